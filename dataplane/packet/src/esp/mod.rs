//! The parts of ESP (RFC 4303, AES-GCM per RFC 4106) that are state rather than wire format:
//! the SAs ([`sa`]), the cipher interface ([`cipher`]), the anti-replay window of an inbound SA
//! ([`replay`]), the explicit IV an outbound SA puts in every packet ([`iv`]), the outbound
//! sequence numbers that several workers share ([`seq`]), and the padding of what is encrypted
//! ([`padding`]). The wire view is [`crate::wire::EspPacket`]; the cipher is DPDK's cryptodev,
//! in the DPDK layer.

pub mod cipher;
pub mod iv;
pub mod padding;
pub mod replay;
pub mod runtime;
pub mod sa;
pub mod seq;
