#include "shim.h"

#include <pthread.h>
#include <signal.h>

int conduit_rte_errno(void)
{
    return rte_errno;
}

uint64_t conduit_flag_value(int which)
{
    switch (which) {
    case 0: return RTE_ETH_RSS_IPV4;
    case 1: return RTE_ETH_RSS_NONFRAG_IPV4_TCP;
    case 2: return RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE;
    case 3: return RTE_MBUF_F_TX_IP_CKSUM;
    case 4: return RTE_MBUF_F_RX_IP_CKSUM_MASK;
    default: return 0;
    }
}

int conduit_block_realtime_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    for (int s = SIGRTMIN; s <= SIGRTMAX; s++)
        sigaddset(&set, s);
    return pthread_sigmask(SIG_BLOCK, &set, NULL);
}

void conduit_crypto_op_aead(struct rte_crypto_op *op, struct rte_mbuf *m, uint32_t data_len)
{
    struct rte_crypto_sym_op *sym = op->sym;

    m->data_len = (uint16_t)(CONDUIT_CRYPTO_SCRATCH_DATA + data_len);
    m->pkt_len = CONDUIT_CRYPTO_SCRATCH_DATA + data_len;
    op->status = RTE_CRYPTO_OP_STATUS_NOT_PROCESSED;
    sym->m_src = m;
    sym->m_dst = NULL;
    sym->aead.data.offset = CONDUIT_CRYPTO_SCRATCH_DATA;
    sym->aead.data.length = data_len;
    sym->aead.aad.data = rte_pktmbuf_mtod_offset(m, uint8_t *, CONDUIT_CRYPTO_SCRATCH_AAD);
    sym->aead.aad.phys_addr = rte_pktmbuf_iova_offset(m, CONDUIT_CRYPTO_SCRATCH_AAD);
    sym->aead.digest.data = rte_pktmbuf_mtod_offset(m, uint8_t *, CONDUIT_CRYPTO_SCRATCH_ICV);
    sym->aead.digest.phys_addr = rte_pktmbuf_iova_offset(m, CONDUIT_CRYPTO_SCRATCH_ICV);
}

uint8_t *conduit_crypto_op_iv(struct rte_crypto_op *op)
{
    return rte_crypto_op_ctod_offset(op, uint8_t *, CONDUIT_CRYPTO_IV_OFFSET);
}

uint8_t *conduit_pktmbuf_mtod(struct rte_mbuf *m)
{
    return rte_pktmbuf_mtod(m, uint8_t *);
}

uint8_t conduit_crypto_op_status(const struct rte_crypto_op *op)
{
    return op->status;
}
