use std::path::{Path, PathBuf};
use std::sync::Arc;

use conduit_packet::esp::sa::{SaCounter, SaKey};

use super::*;

const KEY_A: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223";
const KEY_B: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff01020304";
const KEY_C: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100a0b0c0d0";

/// A config with a GRE tunnel (id 0) and an IPsec tunnel (id 1) whose SAs are `sas`.
fn config(sas: &str) -> Config {
    let text = format!(
        "\
dataplane:
  ports: [{{ device: net_ring0, ipv4: 192.0.2.10/24 }}]
  workers: [1, 2]
  mode: pipeline
local_endpoints: [203.0.113.1]
gateway: {{ ipv4: 192.0.2.1, port: net_ring0 }}
ipsec:
  instance_id: 9
tunnels:
  - name: gre-a
    kind: gre
    local: 203.0.113.1
    remote: 198.51.100.1
    interface_address: 10.100.0.0/31
  - name: site-c
    kind: ipsec
    local: 203.0.113.1
    remote: 198.51.100.3
    interface_address: 10.100.0.4/31
    ipsec:
{sas}"
    );
    Config::parse(&text, Path::new("test.yaml")).unwrap()
}

fn key(hex: &str) -> SaKey {
    crate::config::parse_key(hex).unwrap()
}

#[test]
fn builds_the_sas_of_every_ipsec_tunnel() {
    let c = config(&format!(
        "      outbound: {{ spi: 0x2000, key: {KEY_A} }}\n      inbound:\n        - {{ spi: 0x1000, key: {KEY_B} }}\n        - {{ spi: 0x1001, key: {KEY_C} }}\n      replay_window: 128\n      nat_t: true\n"
    ));
    let mut reg = SaRegistry::new(2);
    assert_eq!(reg.control_writer(), 2);
    let ipsec = reg.build(&c, Some(5));
    assert_eq!(
        ipsec.iv_prefix,
        IvPrefix {
            instance_id: 9,
            epoch: 5
        }
    );
    assert_eq!(ipsec.tunnels.len(), 1);
    let (id, sas) = &ipsec.tunnels[0];
    assert_eq!(*id, TunnelId(1));
    assert!(sas.nat_t);
    let out = sas.outbound.as_ref().unwrap();
    assert_eq!((out.spi, &out.key), (0x2000, &key(KEY_A)));
    let spis: Vec<u32> = sas.inbound.iter().map(|s| s.spi).collect();
    assert_eq!(spis, [0x1000, 0x1001]);
    assert_eq!(sas.inbound[1].key, key(KEY_C));
    assert!(sas.inbound.iter().all(|s| s.replay_window == 128));
    // Three writers: two workers and the control thread (index 2).
    out.shared.add(2, SaCounter::Packets, 1);
    out.shared.add(3, SaCounter::Packets, 100);
    assert_eq!(out.shared.total(SaCounter::Packets), 1);
    // Without a boot epoch no SA is installed: nothing could be sent with a safe IV.
    let none = SaRegistry::new(2).build(&c, None);
    assert_eq!(none.tunnels.len(), 1);
    assert!(none.tunnels[0].1.outbound.is_none() && none.tunnels[0].1.inbound.is_empty());
    assert!(!format!("{ipsec:?} {reg:?}").contains("0102030405"));
}

#[test]
fn a_reload_keeps_unchanged_sas_and_their_sequence_numbers() {
    let sas = |out: &str, inb: &str, window: u32| {
        format!(
            "      outbound: {{ spi: 0x2000, key: {out} }}\n      inbound:\n{inb}      replay_window: {window}\n"
        )
    };
    let one = format!("        - {{ spi: 0x1000, key: {KEY_B} }}\n");
    let two = format!("{one}        - {{ spi: 0x1001, key: {KEY_C} }}\n");
    let mut reg = SaRegistry::new(1);
    let first = reg.build(&config(&sas(KEY_A, &one, 0)), Some(1));
    let out1 = first.tunnels[0].1.outbound.clone().unwrap();
    let in1 = first.tunnels[0].1.inbound[0].clone();
    assert_eq!(out1.shared.seq().take(), Some(1));
    in1.shared.add(0, SaCounter::Packets, 7);

    // Rekey step 1: a second inbound SA; the others are the same objects.
    let second = reg.build(&config(&sas(KEY_A, &two, 0)), Some(1));
    let t = &second.tunnels[0].1;
    assert!(Arc::ptr_eq(
        &t.outbound.as_ref().unwrap().shared,
        &out1.shared
    ));
    assert!(Arc::ptr_eq(&t.inbound[0].shared, &in1.shared));
    assert_eq!(t.inbound[0].shared.total(SaCounter::Packets), 7);
    assert!(!Arc::ptr_eq(&t.inbound[1].shared, &in1.shared));
    assert_eq!(t.outbound.as_ref().unwrap().shared.seq().take(), Some(2));
    assert_eq!(second.tunnels[0].1.outbound, first.tunnels[0].1.outbound);

    // A new window makes a new inbound SA (the workers must build a new window).
    let third = reg.build(&config(&sas(KEY_A, &two, 64)), Some(1));
    assert!(!Arc::ptr_eq(
        &third.tunnels[0].1.inbound[0].shared,
        &in1.shared
    ));

    // An outbound key replaced, then put back: it continues its numbers, never restarts.
    let fourth = reg.build(&config(&sas(&format!("0x{KEY_A}"), &two, 64)), Some(1));
    assert!(Arc::ptr_eq(
        &fourth.tunnels[0].1.outbound.as_ref().unwrap().shared,
        &out1.shared
    ));
    let other = reg.build(
        &config(&sas(&KEY_A.replace("0001", "0101"), &two, 64)),
        Some(1),
    );
    let other_out = &other.tunnels[0].1.outbound.as_ref().unwrap().shared;
    assert!(!Arc::ptr_eq(other_out, &out1.shared));
    let back = reg.build(&config(&sas(KEY_A, &two, 64)), Some(1));
    let back_out = &back.tunnels[0].1.outbound.as_ref().unwrap().shared;
    assert!(Arc::ptr_eq(back_out, &out1.shared));
    assert_eq!(back_out.seq().take(), Some(3));
}

#[test]
fn key_refs_come_from_the_keys_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("keys");
    let keys = dir.join("keys.yaml");
    std::fs::write(&keys, format!("site-c-next: 0x{KEY_C}\n")).unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
    let yaml = format!(
        "dataplane:\n  ports: [{{ device: net_ring0, ipv4: 192.0.2.10/24 }}]\n  workers: [1]\n  mode: pipeline\n\
         local_endpoints: [203.0.113.1]\ngateway: {{ ipv4: 192.0.2.1, port: net_ring0 }}\n\
         ipsec: {{ instance_id: 1, keys_file: keys.yaml }}\ntunnels:\n  - name: site-c\n    kind: ipsec\n    \
         local: 203.0.113.1\n    remote: 198.51.100.3\n    interface_address: 10.100.0.4/31\n    ipsec:\n      \
         inbound: [{{ spi: 0x1000, key: {KEY_B} }}, {{ spi: 0x1001, key_ref: site-c-next }}]\n"
    );
    let path = dir.join("conduit.yaml");
    std::fs::write(&path, yaml).unwrap();
    let c = Config::load(&path).unwrap();
    let ipsec = SaRegistry::new(1).build(&c, Some(1));
    let t = &ipsec.tunnels[0].1;
    assert!(t.outbound.is_none());
    assert_eq!(t.inbound[1].key, key(KEY_C));
    let _ = std::fs::remove_dir_all(&dir);
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("conduit-ipsec-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn boot_epoch_counts_starts_and_persists() {
    let dir = temp_dir("epoch");
    assert_eq!(next_boot_epoch(&dir).unwrap(), 1);
    assert_eq!(next_boot_epoch(&dir).unwrap(), 2);
    assert_eq!(
        std::fs::read_to_string(dir.join(BOOT_EPOCH_FILE)).unwrap(),
        "2\n"
    );
    assert!(!dir.join(".boot-epoch.tmp").exists());
    std::fs::write(dir.join(BOOT_EPOCH_FILE), "65535\n").unwrap();
    assert_eq!(next_boot_epoch(&dir).unwrap(), 0);
    assert_eq!(next_boot_epoch(&dir).unwrap(), 1);
    std::fs::write(dir.join(BOOT_EPOCH_FILE), "many").unwrap();
    let e = next_boot_epoch(&dir).unwrap_err();
    assert!(matches!(e, BootEpochError::Corrupt { .. }), "{e}");
    // The corrupt file is left for the operator.
    assert_eq!(
        std::fs::read_to_string(dir.join(BOOT_EPOCH_FILE)).unwrap(),
        "many"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn boot_epoch_that_cannot_be_written_is_an_error() {
    let dir = temp_dir("missing").join("no-such-dir");
    let e = next_boot_epoch(&dir).unwrap_err();
    assert!(matches!(e, BootEpochError::Write { .. }), "{e}");
    assert!(e.to_string().contains("cannot persist"), "{e}");
    // A directory where the file should be cannot be read.
    let dir = temp_dir("isdir");
    std::fs::create_dir(dir.join(BOOT_EPOCH_FILE)).unwrap();
    assert!(matches!(
        next_boot_epoch(&dir),
        Err(BootEpochError::Read { .. })
    ));
    let _ = std::fs::remove_dir_all(&dir);
}
