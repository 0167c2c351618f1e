//! 10,000 packets through the appliance in `io` mode over net_pcap: what comes out of the
//! paired port is byte-for-byte what went in, in order, and the counters agree.

mod common;

use common::*;

#[test]
fn ten_thousand_packets_come_out_byte_identical() {
    let dir = scratch("pcap-io");
    let input = dir.join("in.pcap");
    let output = dir.join("out.pcap");
    let config = dir.join("io.yaml");

    let mut rng = Rng(0x9e3779b97f4a7c15);
    let packets: Vec<Vec<u8>> = (0..10_000u32)
        .map(|i| {
            let len = 60 + (rng.next() % (1514 - 60 + 1)) as usize;
            let mut p: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            p[..4].copy_from_slice(&i.to_be_bytes());
            p
        })
        .collect();
    write_pcap(&input, &packets);
    std::fs::write(
        &config,
        "dataplane:\n  ports:\n    - device: net_pcap0\n    - device: net_pcap1\n  workers: [1]\n  mode: io\nstats:\n  interval_ms: 0\n",
    )
    .unwrap();

    let mut args = eal_args("pcap-io");
    args.extend([
        "--vdev".to_string(),
        format!("net_pcap0,rx_pcap={}", input.display()),
        "--vdev".to_string(),
        format!("net_pcap1,tx_pcap={}", output.display()),
        "--".to_string(),
        "--config".to_string(),
        config.display().to_string(),
        "--exit-when-idle".to_string(),
        "500".to_string(),
    ]);
    let out = run(&args);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("stopping (idle)"), "{log}");
    assert!(
        log.contains("port 1 net_pcap1    tx-packets 10000"),
        "port counters must show every packet sent\n{log}"
    );

    assert!(log.contains("mbufs in use after shutdown: 0 of"), "{log}");

    let got = read_pcap(&output);
    assert_eq!(got.len(), packets.len(), "packet count");
    for (i, (g, p)) in got.iter().zip(&packets).enumerate() {
        assert_eq!(g, p, "packet {i} differs");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
