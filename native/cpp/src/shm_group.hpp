// Shared-memory collectives for the ranks of one communicator that run on one host.
//
// One POSIX shared-memory segment per communicator generation and host: a header (a
// barrier counter, a poison word, one line per local rank) and two banks of one slot
// per local rank. Every collective is cut into steps of at most one slot per rank; a
// step alternates banks, so a rank may write the next step while a slower peer still
// reads the previous one. Synchronisation is a monotonic arrival counter: a futex wait
// after a short spin, bounded by the op's timeout, checking the poison word and the
// liveness of every local peer (pidfd) while it waits.
//
// Ownership: a ShmGroup owns its mapping and its pidfds. The creator also owns the
// segment's name and removes it when the group is destroyed, if it has not already
// been removed right after every local rank attached (the normal case).
#ifndef TORUS_SHM_GROUP_HPP
#define TORUS_SHM_GROUP_HPP

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace torus {

class ShmGroup {
  public:
    // o[i] = x[i] op y[i] (o may alias x)
    using Reduce3 = void (*)(void* o, const void* x, const void* y, size_t n);

    // Status codes: the Gloo shim's numbering (0 ok, 1 invalid argument, 2 out of memory,
    // 5 internal, 6 timeout, 7 peer failure, 8 aborted, 9 mismatch).
    static constexpr int OK = 0, INVALID = 1, NOMEM = 2, INTERNAL = 5, TIMEOUT = 6, PEER = 7, ABORTED = 8,
                         MISMATCH = 9;
    static constexpr int MAX_LOCAL = 64;

    // Creates (create = true: O_EXCL, sized and allocated up front so that a full tmpfs is an
    // error here and never a SIGBUS later) or opens and validates the segment `name`.
    // global_ranks[i] is the communicator rank of local rank i (for messages).
    static int open(const std::string& name, bool create, int local_rank, const std::vector<int>& global_ranks,
                    int64_t slot_bytes, std::unique_ptr<ShmGroup>* out, std::string* err);

    ~ShmGroup();
    ShmGroup(const ShmGroup&) = delete;
    ShmGroup& operator=(const ShmGroup&) = delete;

    // After every local rank has opened the segment: checks that all attached, and opens a
    // pidfd per peer to notice one that dies while another waits.
    int ready(std::string* err);
    // Removes the segment's name (the creator, once every local rank has attached).
    int unlink(std::string* err);
    // Fails every pending and future op of every local rank with `reason`.
    void poison(const std::string& reason);

    int allreduce(const void* in, void* out, size_t count, int dtype, size_t es, int op, Reduce3 f,
                  uint64_t tag, int64_t timeout_ms, std::string* err);
    // the rank-ordered reduction into root_local's out only (the others' out is not written)
    int reduce(const void* in, void* out, size_t count, int dtype, size_t es, int op, Reduce3 f, int root_local,
               uint64_t tag, int64_t timeout_ms, std::string* err);
    // root_local: the local index of the root
    int broadcast(const void* in, void* out, size_t count, int dtype, size_t es, int root_local, uint64_t tag,
                  int64_t timeout_ms, std::string* err);
    // out holds local_size blocks of count elements, in local-rank order
    int allgather(const void* in, void* out, size_t count, int dtype, size_t es, uint64_t tag, int64_t timeout_ms,
                  std::string* err);
    int barrier(uint64_t tag, int64_t timeout_ms, std::string* err);

    int local_rank() const { return me_; }
    int local_size() const { return n_; }

    // Removes /dev/shm entries named prefix + "<g>-..." with g < below_generation: segments of
    // earlier generations whose ranks died before the name was removed. Returns how many.
    static int unlink_stale(const std::string& prefix, int64_t below_generation);

    struct Desc;  // one op step's description, compared across local ranks

  private:
    struct Header;
    ShmGroup() = default;

    int reduce_impl(const void* in, void* out, size_t count, int dtype, size_t es, int op, Reduce3 f, int root,
                    uint64_t tag, int64_t timeout_ms, std::string* err);
    int step(const Desc& mine, int64_t timeout_ms, std::string* err);  // publish + barrier + check
    int wait_barrier(int64_t timeout_ms, std::string* err);
    void poison_with(uint32_t kind, const std::string& reason);
    int poisoned_status(std::string* err) const;
    int dead_peer() const;
    int departed_peer(uint32_t number) const;  // a local rank that closed before barrier `number`, or -1
    char* slot(int bank, int local) const;
    std::string who(int local) const;
    std::string describe(int local, const Desc& d) const;

    std::string name_;
    bool creator_ = false;
    bool unlinked_ = false;
    bool ready_ = false;  // every local rank attached: a close marks this rank departed from then on
    int me_ = 0;
    int n_ = 0;
    std::vector<int> global_;
    int64_t slot_bytes_ = 0;
    size_t map_bytes_ = 0;
    Header* h_ = nullptr;
    char* data_ = nullptr;
    uint32_t barriers_ = 0;  // barriers this rank has entered
    uint64_t steps_ = 0;     // steps this rank has run (bank = steps_ & 1)
    int spin_ = 0;
    std::vector<int> pidfds_;  // -1 where none could be opened
    std::vector<int> pids_;
};

}  // namespace torus

#endif
