/*
 * C ABI of the Torus Gloo shim: CPU collectives over Gloo's TCP transport.
 *
 * A communicator is created in two phases so that the address exchange can travel
 * through any store (Torus uses ZooKeeper from Java):
 *   1. torus_gloo_create() opens a TCP device and one pair per peer, and
 *      torus_gloo_local_addresses() returns this rank's listening addresses,
 *      one fixed-size slot per peer (its own slot is zero).
 *   2. torus_gloo_connect() takes, for each peer i, the address that peer i
 *      created for this rank, and connects every pair.
 *
 * Every function returns a status code and never lets a C++ exception escape;
 * the detail of a failure is in torus_gloo_last_error() on the calling thread.
 * Operations on one communicator must be issued by one thread at a time, in the
 * same order on every rank. torus_gloo_abort() is the exception: it may be
 * called from any thread and makes every pending and future operation fail.
 */
#ifndef TORUS_GLOO_H
#define TORUS_GLOO_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TORUS_GLOO_OK 0
#define TORUS_GLOO_ERR_INVALID_ARGUMENT 1
#define TORUS_GLOO_ERR_OUT_OF_MEMORY 2
#define TORUS_GLOO_ERR_INTERNAL 5
#define TORUS_GLOO_ERR_TIMEOUT 6
#define TORUS_GLOO_ERR_IO 7
#define TORUS_GLOO_ERR_ABORTED 8
#define TORUS_GLOO_ERR_MISMATCH 9 /* ranks called different collectives (shared-memory transport) */

/* reduce ops (AVG = SUM followed by division by the world size) */
#define TORUS_GLOO_SUM 0
#define TORUS_GLOO_PROD 1
#define TORUS_GLOO_MIN 2
#define TORUS_GLOO_MAX 3
#define TORUS_GLOO_AVG 4

/* all-reduce algorithms */
#define TORUS_GLOO_ALGO_RING 1
#define TORUS_GLOO_ALGO_BCUBE 2
#define TORUS_GLOO_ALGO_HALVING_DOUBLING 3

/* dtypes use the codes of torus.h: F32=0 F16=1 BF16=2 F64=3 I8=4 U8=5 I32=6 I64=7 */

const char* torus_gloo_last_error(void);

int torus_gloo_create(int rank, int size, const char* hostname, int64_t timeout_ms, void** out);
int torus_gloo_address_bytes(void* comm, int64_t* out);
int torus_gloo_local_addresses(void* comm, char* buf, int64_t capacity);
int torus_gloo_connect(void* comm, const char* remote, int64_t bytes);
int torus_gloo_abort(void* comm, const char* reason);
int torus_gloo_destroy(void* comm);

int torus_gloo_allreduce(void* comm, void* in, void* out, int64_t count, int dtype, int op, int algorithm,
                         int64_t timeout_ms, uint32_t tag);
int torus_gloo_reduce(void* comm, void* in, void* out, int64_t count, int dtype, int op, int root,
                      int64_t timeout_ms, uint32_t tag);
int torus_gloo_broadcast(void* comm, void* in, void* out, int64_t count, int dtype, int root,
                         int64_t timeout_ms, uint32_t tag);
/* in: count elements; out: count * size elements (rank-major) */
int torus_gloo_allgather(void* comm, void* in, void* out, int64_t count, int dtype, int64_t timeout_ms, uint32_t tag);
/* in: count * size elements; out: count elements, the reduction of block [rank] */
int torus_gloo_reduce_scatter(void* comm, void* in, void* out, int64_t count, int dtype, int op,
                              int64_t timeout_ms, uint32_t tag);
/* in and out: count * size elements; block j of in goes to rank j */
int torus_gloo_alltoall(void* comm, void* in, void* out, int64_t count, int dtype, int64_t timeout_ms, uint32_t tag);
int torus_gloo_send(void* comm, void* ptr, int64_t bytes, int dst, uint64_t slot, int64_t timeout_ms);
int torus_gloo_recv(void* comm, void* ptr, int64_t bytes, int src, uint64_t slot, int64_t timeout_ms);
int torus_gloo_barrier(void* comm, int64_t timeout_ms, uint32_t tag);

/* Elementwise c = a (op) b over count elements of dtype; AVG is not accepted here. */
/* Payload bytes this communicator has handed to its TCP connections since connect, read
 * from the kernel's per-socket counters (TCP_INFO: bytes transmitted, less retransmitted
 * bytes, plus bytes still queued; data and Gloo's control messages); *sockets is how many connections were found
 * (size - 1 when every one was). Counts of closed connections are kept at their last value. */
int torus_gloo_bytes_sent(void* comm, int64_t* out, int64_t* sockets);

int torus_gloo_reduce_local(void* c, const void* a, const void* b, int64_t count, int dtype, int op);

/*
 * Shared-memory transport for the ranks of a communicator that share a host
 * (native/cpp/src/shm_group.hpp). Set up after connect, in this order on every local
 * rank: the host's leader calls shm_open(create=1); after a barrier the others call
 * shm_open(create=0); after another barrier every local rank calls shm_ready and the
 * leader shm_unlink, so that no name outlives the setup. shm_set_layout then says
 * whether the layout is hierarchical (ranks on several hosts: reduce inside the host,
 * all-reduce across the hosts' leaders over `cross`, broadcast inside the host); the
 * communicator owns `cross` from then on. shm_close drops all of it (a fallback to
 * Gloo). An abort poisons the segment: every local peer fails at once.
 * shm_unlink_stale returns how many stale names it removed (not a status).
 */
int torus_gloo_shm_open(void* comm, const char* name, int create, int local_rank, const int32_t* global_ranks,
                        int local_size, int64_t slot_bytes);
int torus_gloo_shm_ready(void* comm);
int torus_gloo_shm_unlink(void* comm);
int torus_gloo_shm_close(void* comm);
int torus_gloo_shm_set_layout(void* comm, int hierarchical, int leader, int host_index, void* cross);
int torus_gloo_shm_unlink_stale(const char* prefix, int64_t below_generation);
int torus_gloo_shm_allreduce(void* comm, void* in, void* out, int64_t count, int dtype, int op, int algorithm,
                             int64_t timeout_ms, uint32_t tag);
int torus_gloo_shm_broadcast(void* comm, void* in, void* out, int64_t count, int dtype, int root_host, int root_local,
                             int64_t timeout_ms, uint32_t tag);
int torus_gloo_shm_allgather(void* comm, void* in, void* out, int64_t count, int dtype, int64_t timeout_ms, uint32_t tag);
int torus_gloo_shm_barrier(void* comm, int64_t timeout_ms, uint32_t tag);

#ifdef __cplusplus
}
#endif

#endif
