#![no_main]

// Every parser over the same input, plus the frame walked from Ethernet inwards.
libfuzzer_sys::fuzz_target!(|data: &[u8]| conduit_packet_fuzz::all(data));
