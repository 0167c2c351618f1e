//! Finds the system DPDK with pkg-config, generates bindings with bindgen and compiles C
//! wrappers for DPDK's `static inline` fast-path functions (`rte_eth_rx_burst`,
//! `rte_pktmbuf_alloc`, ...), which have no symbol in the shared libraries.
//!
//! Any missing prerequisite stops the build with one message that names the Debian packages.

use std::env;
use std::path::PathBuf;
use std::process::Command;

/// DPDK releases whose ABI and headers these bindings were written against: the 22.11 LTS line.
const MIN_VERSION: (u32, u32) = (22, 11);
const MAX_VERSION_EXCLUSIVE: (u32, u32) = (23, 0);

const INSTALL_HINT: &str =
    "install them with: apt-get install -y libdpdk-dev dpdk dpdk-dev pkg-config clang libclang-dev";

fn fail(what: &str) -> ! {
    eprintln!("\nerror: dpdk-sys: {what}\n       {INSTALL_HINT}\n");
    panic!("dpdk-sys: {what}; {INSTALL_HINT}");
}

fn pkg_config(args: &[&str]) -> String {
    let out = match Command::new("pkg-config").args(args).output() {
        Ok(out) => out,
        Err(e) => fail(&format!("pkg-config could not be run ({e})")),
    };
    if !out.status.success() {
        fail(&format!(
            "pkg-config does not know libdpdk ({})",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn parse_version(v: &str) -> Option<(u32, u32)> {
    let mut it = v.split('.');
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

fn main() {
    println!("cargo:rerun-if-changed=src/shim.h");
    println!("cargo:rerun-if-changed=src/shim.c");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    let version = pkg_config(&["--modversion", "libdpdk"]);
    match parse_version(&version) {
        Some(v) if v >= MIN_VERSION && v < MAX_VERSION_EXCLUSIVE => {}
        _ => fail(&format!(
            "found DPDK {version}, need {}.{} <= version < {}.{} (the 22.11 LTS line)",
            MIN_VERSION.0, MIN_VERSION.1, MAX_VERSION_EXCLUSIVE.0, MAX_VERSION_EXCLUSIVE.1
        )),
    }
    println!("cargo:rustc-env=CONDUIT_DPDK_VERSION={version}");
    println!("cargo:version={version}");

    // The full cflags matter: they carry `-include rte_config.h -march=corei7`, without which
    // the headers' packed/aligned structs and SIMD paths do not parse as DPDK built them.
    let cflags: Vec<String> = pkg_config(&["--cflags", "libdpdk"])
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let libs = pkg_config(&["--libs", "libdpdk"]);
    for tok in libs.split_whitespace() {
        if let Some(dir) = tok.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
        } else if let Some(lib) = tok.strip_prefix("-l") {
            println!("cargo:rustc-link-lib=dylib={lib}");
        } else if tok.starts_with("-Wl,") {
            println!("cargo:rustc-link-arg={tok}");
        }
    }

    // rte_eth_from_rings (ethdev ports over in-process rings, used by conduit-perf) lives in the
    // ring PMD, which pkg-config's link line leaves to EAL's plugin loading.
    println!("cargo:rustc-link-lib=dylib=rte_net_ring");

    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR set by cargo"));
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let wrappers = out_dir.join("static_fns");

    let mut builder = bindgen::Builder::default()
        .header(manifest_dir.join("src/shim.h").to_string_lossy())
        .clang_args(&cflags)
        .clang_arg("-DALLOW_EXPERIMENTAL_API")
        .clang_arg(format!("-I{}", manifest_dir.join("src").display()))
        .wrap_static_fns(true)
        .wrap_static_fns_path(&wrappers)
        .derive_default(true)
        .derive_debug(false)
        .layout_tests(true)
        .prepend_enum_name(false)
        .generate_comments(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));

    // Narrow allowlist: every static inline function listed here becomes a C wrapper to compile.
    for f in [
        "rte_eal_init",
        "rte_eal_cleanup",
        "rte_eal_process_type",
        "rte_eal_remote_launch",
        "rte_eal_wait_lcore",
        "rte_eal_get_lcore_state",
        "rte_eal_has_hugepages",
        "rte_strerror",
        "rte_version",
        "rte_lcore_id",
        "rte_lcore_count",
        "rte_lcore_is_enabled",
        "rte_lcore_to_socket_id",
        "rte_get_main_lcore",
        "rte_get_next_lcore",
        "rte_socket_id",
        "rte_thread_register",
        "rte_thread_unregister",
        "rte_get_tsc_hz",
        "rte_rdtsc",
        "rte_rdtsc_precise",
        "rte_delay_us_block",
        "rte_dev_probe",
        "rte_mempool_free",
        "rte_mempool_avail_count",
        "rte_mempool_in_use_count",
        "rte_mempool_lookup",
        "rte_pktmbuf_pool_create",
        "rte_pktmbuf_alloc",
        "rte_pktmbuf_alloc_bulk",
        "rte_pktmbuf_free",
        "rte_pktmbuf_free_bulk",
        "rte_pktmbuf_prepend",
        "rte_pktmbuf_append",
        "rte_pktmbuf_adj",
        "rte_pktmbuf_trim",
        "rte_pktmbuf_headroom",
        "rte_pktmbuf_tailroom",
        "rte_pktmbuf_reset",
        "rte_pktmbuf_clone",
        "rte_pktmbuf_copy",
        "rte_mbuf_refcnt_read",
        "rte_eth_dev_count_avail",
        "rte_eth_dev_get_port_by_name",
        "rte_eth_dev_get_name_by_port",
        "rte_eth_dev_is_valid_port",
        "rte_eth_dev_info_get",
        "rte_eth_dev_configure",
        "rte_eth_dev_adjust_nb_rx_tx_desc",
        "rte_eth_rx_queue_setup",
        "rte_eth_tx_queue_setup",
        "rte_eth_dev_start",
        "rte_eth_dev_stop",
        "rte_eth_dev_close",
        "rte_eth_dev_set_mtu",
        "rte_eth_dev_get_mtu",
        "rte_eth_dev_socket_id",
        "rte_eth_promiscuous_enable",
        "rte_eth_macaddr_get",
        "rte_eth_dev_default_mac_addr_set",
        "rte_eth_dev_mac_addr_add",
        "rte_eth_link_get_nowait",
        "rte_eth_stats_get",
        "rte_eth_stats_reset",
        "rte_eth_dev_set_tx_queue_stats_mapping",
        "rte_eth_dev_set_rx_queue_stats_mapping",
        "rte_eth_rx_burst",
        "rte_eth_tx_burst",
        "rte_ring_create",
        "rte_ring_free",
        "rte_ring_count",
        "rte_ring_mp_enqueue_burst",
        "rte_ring_sc_dequeue_burst",
        "rte_telemetry_register_cmd",
        "rte_tel_data_start_array",
        "rte_tel_data_start_dict",
        "rte_tel_data_string",
        "rte_tel_data_add_array_string",
        "rte_tel_data_add_array_int",
        "rte_tel_data_add_array_u64",
        "rte_tel_data_add_array_container",
        "rte_tel_data_add_dict_string",
        "rte_tel_data_add_dict_int",
        "rte_tel_data_add_dict_u64",
        "rte_tel_data_add_dict_container",
        "rte_tel_data_alloc",
        "rte_tel_data_free",
        "rte_ring_enqueue_burst",
        "rte_ring_dequeue_burst",
        "rte_eth_from_rings",
        "rte_pdump_init",
        "rte_pdump_uninit",
        "rte_cryptodev_get_dev_id",
        "rte_cryptodev_count",
        "rte_cryptodev_socket_id",
        "rte_cryptodev_info_get",
        "rte_cryptodev_configure",
        "rte_cryptodev_queue_pair_setup",
        "rte_cryptodev_start",
        "rte_cryptodev_stop",
        "rte_cryptodev_close",
        "rte_cryptodev_sym_get_private_session_size",
        "rte_cryptodev_sym_session_pool_create",
        "rte_cryptodev_sym_session_create",
        "rte_cryptodev_sym_session_free",
        "rte_cryptodev_sym_cpu_crypto_process",
        "rte_cryptodev_enqueue_burst",
        "rte_cryptodev_dequeue_burst",
        "rte_crypto_op_pool_create",
        "rte_crypto_op_alloc",
        "rte_crypto_op_free",
        "rte_crypto_op_attach_sym_session",
        "conduit_crypto_op_aead",
        "conduit_crypto_op_iv",
        "conduit_pktmbuf_mtod",
        "conduit_crypto_op_status",
        "conduit_rte_errno",
        "conduit_flag_value",
        "conduit_block_realtime_signals",
    ] {
        builder = builder.allowlist_function(f);
    }
    builder = builder
        .allowlist_type("rte_mbuf")
        .allowlist_type("rte_crypto_sym_xform")
        .allowlist_type("rte_crypto_sym_vec")
        .allowlist_type("rte_crypto_sym_ofs")
        .allowlist_type("rte_cryptodev_info")
        .allowlist_type("rte_cryptodev_config")
        .allowlist_type("rte_cryptodev_qp_conf")
        .allowlist_var("RTE_CRYPTODEV_FF_SYM_CPU_CRYPTO")
        .allowlist_var("RTE_CRYPTODEV_FF_SYM_OPERATION_CHAINING")
        .allowlist_type("rte_crypto_op")
        .allowlist_type("rte_crypto_op_status")
        .allowlist_type("rte_crypto_op_type")
        .allowlist_type("conduit_crypto_layout")
        .allowlist_type("rte_mempool")
        .allowlist_type("rte_eth_.*")
        .allowlist_type("rte_ether_addr")
        .allowlist_type("conduit_flags")
        .allowlist_type("rte_tel_data")
        .allowlist_type("rte_tel_value_type")
        .allowlist_type("telemetry_cb")
        .allowlist_var("RTE_MAX_LCORE")
        .allowlist_var("RTE_MAX_ETHPORTS")
        .allowlist_var("RTE_PKTMBUF_HEADROOM")
        .allowlist_var("RTE_MBUF_DEFAULT_BUF_SIZE")
        .allowlist_var("RTE_ETHDEV_QUEUE_STAT_CNTRS")
        .allowlist_var("RTE_ETH_MQ_.*")
        .allowlist_var("RTE_ETH_LINK_.*")
        .allowlist_var("RTE_ETHER_.*")
        .allowlist_var("SOCKET_ID_ANY")
        .allowlist_var("RTE_RING_F_.*")
        .allowlist_var("RTE_TEL_MAX_.*")
        .allowlist_var("RING_F_SP_ENQ")
        .allowlist_var("RING_F_SC_DEQ");

    // bindgen panics (rather than returning an error) when it cannot load libclang; turn that
    // into the same one-line message as every other missing prerequisite.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let generated =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || builder.generate()));
    std::panic::set_hook(default_hook);
    let bindings = match generated {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => fail(&format!("bindgen could not read the DPDK headers ({e})")),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            fail(&format!(
                "bindgen could not run: {}",
                msg.lines().next().unwrap_or("")
            ))
        }
    };
    bindings
        .write_to_file(out_dir.join("bindings.rs"))
        .expect("write bindings.rs");

    let mut build = cc::Build::new();
    build
        .file(wrappers.with_extension("c"))
        .file(manifest_dir.join("src/shim.c"))
        .include(&manifest_dir)
        .include(manifest_dir.join("src"))
        .define("ALLOW_EXPERIMENTAL_API", None)
        .opt_level(3)
        .warnings(false);
    for flag in &cflags {
        // `-include rte_config.h` is two tokens; cc's flag() takes them one at a time in order.
        build.flag(flag);
    }
    build.compile("conduit_dpdk_wrappers");
}
