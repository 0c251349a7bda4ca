/*
 * fault.h: the fault-injecting side of the io_uring layer, built only with
 * -DMCW_FAULT_INJECTION=ON (a test build; never the product). Faults are chosen when a
 * request is prepared, from the plan in the environment variable MCW_URING_FAULTS, read
 * once per process:
 *
 *   MCW_URING_FAULTS="RULE[,RULE...]"    RULE = OP:WHEN:WHAT
 *     OP    recv | send | write | read | fsync     (write covers write_fixed and writev)
 *     WHEN  nth=N      the N-th request of that kind in the process (1-based), only it
 *           from=N     the N-th and every later one
 *           p=F        each with probability F (seeded by MCW_URING_FAULTS_SEED, else 1)
 *     WHAT  res=-E     the request is not done (a no-op goes to the kernel instead) and
 *                      completes with -E (res=-5 EIO, res=-28 ENOSPC, res=-11 EAGAIN)
 *           short      the request goes with half its length (O_DIRECT reads and writes:
 *                      rounded down to 4096 bytes, at least 4096; writev: half its
 *                      iovecs), so it moves fewer bytes than the caller asked for
 */
#ifndef URING_FAULT_H
#define URING_FAULT_H

#include <stdint.h>

enum ur_op { UR_OP_RECV, UR_OP_SEND, UR_OP_WRITE, UR_OP_READ, UR_OP_FSYNC, UR_OP_COUNT };
enum ur_fault_kind { UR_FAULT_NONE, UR_FAULT_FAIL, UR_FAULT_SHORT };

struct ur_fault_state;

/* At prep: whether the plan picks this request, and how; a FAIL is remembered for reap. */
enum ur_fault_kind ur_fault_decide(struct ur_fault_state **st, enum ur_op op, uint64_t user_data);
/* At reap: the result to report for user_data (res unchanged without a FAIL). */
int32_t ur_fault_result(struct ur_fault_state *st, uint64_t user_data, int32_t res);
void ur_fault_free(struct ur_fault_state *st);

#endif
