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
