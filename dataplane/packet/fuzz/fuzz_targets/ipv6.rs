#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| conduit_packet_fuzz::ipv6(data));
