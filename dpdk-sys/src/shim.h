/* The C side of dpdk-sys: every DPDK header the Rust side uses, plus the few things bindgen
 * cannot see (thread-local rte_errno, RTE_BIT64 flag macros). Bindgen reads this file; the
 * wrappers it generates for static inline functions and shim.c are compiled against it. */
#ifndef CONDUIT_DPDK_SHIM_H
#define CONDUIT_DPDK_SHIM_H

#include <rte_common.h>
#include <rte_errno.h>
#include <rte_eal.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_cycles.h>
#include <rte_version.h>
#include <rte_dev.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ethdev.h>
#include <rte_ring.h>
#include <rte_telemetry.h>
#include <rte_eth_ring.h>
#include <rte_pdump.h>
#include <rte_cryptodev.h>

/* rte_errno is a thread-local macro; bindgen cannot bind it. */
int conduit_rte_errno(void);

/* Blocks every real-time signal (SIGRTMIN..SIGRTMAX, whose values glibc only knows at run time)
 * in the calling thread; 0 or an errno value. */
int conduit_block_realtime_signals(void);

/* RTE_BIT64()-based flags are function-like macro expansions that bindgen drops. An enum makes
 * them visible as constants with their real values (clang and gcc accept 64-bit enumerators). */
enum conduit_flags {
    CONDUIT_ETH_RSS_IPV4 = RTE_ETH_RSS_IPV4,
    CONDUIT_ETH_RSS_FRAG_IPV4 = RTE_ETH_RSS_FRAG_IPV4,
    CONDUIT_ETH_RSS_NONFRAG_IPV4_TCP = RTE_ETH_RSS_NONFRAG_IPV4_TCP,
    CONDUIT_ETH_RSS_NONFRAG_IPV4_UDP = RTE_ETH_RSS_NONFRAG_IPV4_UDP,
    CONDUIT_ETH_RSS_NONFRAG_IPV4_OTHER = RTE_ETH_RSS_NONFRAG_IPV4_OTHER,
    CONDUIT_ETH_RX_OFFLOAD_IPV4_CKSUM = RTE_ETH_RX_OFFLOAD_IPV4_CKSUM,
    CONDUIT_ETH_TX_OFFLOAD_IPV4_CKSUM = RTE_ETH_TX_OFFLOAD_IPV4_CKSUM,
    CONDUIT_ETH_TX_OFFLOAD_MULTI_SEGS = RTE_ETH_TX_OFFLOAD_MULTI_SEGS,
    CONDUIT_ETH_TX_OFFLOAD_MBUF_FAST_FREE = RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE,
    CONDUIT_MBUF_F_RX_IP_CKSUM_MASK = RTE_MBUF_F_RX_IP_CKSUM_MASK,
    CONDUIT_MBUF_F_RX_IP_CKSUM_GOOD = RTE_MBUF_F_RX_IP_CKSUM_GOOD,
    CONDUIT_MBUF_F_RX_IP_CKSUM_BAD = RTE_MBUF_F_RX_IP_CKSUM_BAD,
    CONDUIT_MBUF_F_RX_RSS_HASH = RTE_MBUF_F_RX_RSS_HASH,
    CONDUIT_MBUF_F_TX_IPV4 = RTE_MBUF_F_TX_IPV4,
    CONDUIT_MBUF_F_TX_IP_CKSUM = RTE_MBUF_F_TX_IP_CKSUM,
};

/* The same values computed by the C compiler at run time, so a test can check that the
 * enumerators above came through bindgen unchanged. */
uint64_t conduit_flag_value(int which);

/* The lookaside AEAD layout Conduit uses (see dataplane::crypto): the nonce sits in the crypto
 * op's private area right after the symmetric op (the offset the session's xform names), and a
 * scratch mbuf holds the AAD (padded to 16 bytes, as some PMDs require), the ICV, then the data. */
enum conduit_crypto_layout {
    CONDUIT_CRYPTO_IV_OFFSET = sizeof(struct rte_crypto_op) + sizeof(struct rte_crypto_sym_op),
    CONDUIT_CRYPTO_SCRATCH_AAD = 0,
    CONDUIT_CRYPTO_SCRATCH_ICV = 16,
    CONDUIT_CRYPTO_SCRATCH_DATA = 32,
};

/* Prepares `op` (symmetric, session attached) for one in-place AEAD operation over the first
 * `data_len` bytes at CONDUIT_CRYPTO_SCRATCH_DATA of `m` (a single-segment mbuf whose data
 * starts at its default headroom): sets the mbuf's lengths, the op's offsets and the AAD and
 * digest addresses (virtual and IOVA), and resets the status. */
void conduit_crypto_op_aead(struct rte_crypto_op *op, struct rte_mbuf *m, uint32_t data_len);

/* The address of the nonce inside `op` (CONDUIT_CRYPTO_IV_OFFSET). */
uint8_t *conduit_crypto_op_iv(struct rte_crypto_op *op);

/* The first data byte of `m` (rte_pktmbuf_mtod). */
uint8_t *conduit_pktmbuf_mtod(struct rte_mbuf *m);

/* The op's status (enum rte_crypto_op_status). */
uint8_t conduit_crypto_op_status(const struct rte_crypto_op *op);

#endif
