/*
 * posterlite's QEMU TCG plugin: counts the guest instructions an aarch64 process executes.
 *
 * Debian ships neither a TCG plugin nor QEMU's <qemu-plugin.h> (Debian 12's qemu-user 7.2
 * and qemu-system-* packages carry no headers), so the few declarations of QEMU's plugin
 * API v1 used here are written out below. They match include/qemu/qemu-plugin.h of QEMU
 * 4.2-8.1 (API version 1); QEMU 8.2+ removed the v1 inline call, so this file targets the
 * QEMU that Debian 12 ships.
 *
 * What it records:
 *  - a running total of executed guest instructions: every translation block (TB) gets an
 *    inline "add n_insns" on a global counter, run each time the block executes;
 *  - markers: each time the guest calls sched_yield (aarch64 syscall 124), the running total
 *    is appended to a list. The guest script brackets every invoke with two sched_yield
 *    calls, so differences between markers are instructions per inference, without Python's
 *    start-up or the model load;
 *  - per block: start address, instruction count and executions between marker number
 *    `open` and marker number `close` (arguments), so the host can map blocks to symbols of
 *    the unstripped LiteRT library and name the kernels that ran.
 *
 * Arguments (QEMU 7.2 syntax: -plugin libcount.so,out=PATH,open=K,close=L):
 *   out=PATH   where the report is written at exit (required)
 *   open=K     marker index that opens the per-block window (default 0)
 *   close=L    marker index that closes it (default: none, the window runs to the exit)
 *
 * Report (text): "markers N", then N lines "m TOTAL", then "tb VADDR_HEX N_INSNS EXECS" for
 * every translation with EXECS > 0 inside the window. A block translated twice appears twice.
 *
 * The counters are plain (non-atomic) adds: exact for a single-threaded guest, which is why
 * the guest runs LiteRT with one thread and OpenBLAS with OPENBLAS_NUM_THREADS=1.
 */
#include <inttypes.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- QEMU plugin API v1: the declarations this plugin uses ---- */
typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t; /* opaque here: never read */
struct qemu_plugin_tb;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_syscall_cb_t)(qemu_plugin_id_t id, unsigned int vcpu_index,
                                              int64_t num, uint64_t a1, uint64_t a2,
                                              uint64_t a3, uint64_t a4, uint64_t a5,
                                              uint64_t a6, uint64_t a7, uint64_t a8);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op,
                                              void *ptr, uint64_t imm);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
void qemu_plugin_register_vcpu_syscall_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_syscall_cb_t cb);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb,
                                    void *userdata);
/* ---- end of the API declarations ---- */

#define EXPORT __attribute__((visibility("default")))
#define SYS_SCHED_YIELD_AARCH64 124

EXPORT int qemu_plugin_version = 1;

struct block {
    uint64_t vaddr;
    uint64_t insns;
    uint64_t execs;        /* incremented inline, every execution */
    uint64_t execs_opened; /* value of execs when the window opened (0 if translated later) */
    uint64_t execs_closed; /* value of execs when the window closed (0 if translated later) */
    struct block *next;
};

static uint64_t total;            /* instructions executed so far (inline adds) */
static struct block *blocks;      /* every translation, newest first */
static uint64_t *markers;
static size_t n_markers, cap_markers;
static size_t open_at = 0;
static size_t close_at = SIZE_MAX;
static char *out_path;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    struct block *b = calloc(1, sizeof(*b));
    if (!b) {
        abort();
    }
    b->vaddr = qemu_plugin_tb_vaddr(tb);
    b->insns = qemu_plugin_tb_n_insns(tb);
    pthread_mutex_lock(&lock);
    /* A block first translated after the window opened counts from zero. */
    b->next = blocks;
    blocks = b;
    pthread_mutex_unlock(&lock);
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &total, b->insns);
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &b->execs, 1);
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, uint64_t a1,
                       uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6,
                       uint64_t a7, uint64_t a8)
{
    if (num != SYS_SCHED_YIELD_AARCH64) {
        return;
    }
    pthread_mutex_lock(&lock);
    if (n_markers == cap_markers) {
        cap_markers = cap_markers ? 2 * cap_markers : 1024;
        markers = realloc(markers, cap_markers * sizeof(*markers));
        if (!markers) {
            abort();
        }
    }
    if (n_markers == open_at || n_markers == close_at) {
        for (struct block *b = blocks; b; b = b->next) {
            if (n_markers == open_at) {
                b->execs_opened = b->execs;
            }
            if (n_markers == close_at) {
                b->execs_closed = b->execs;
            }
        }
    }
    markers[n_markers++] = total;
    pthread_mutex_unlock(&lock);
}

static void on_exit_write(qemu_plugin_id_t id, void *userdata)
{
    FILE *out = fopen(out_path, "w");
    if (!out) {
        perror(out_path);
        return;
    }
    fprintf(out, "markers %zu\n", n_markers);
    for (size_t i = 0; i < n_markers; i++) {
        fprintf(out, "m %" PRIu64 "\n", markers[i]);
    }
    if (n_markers > open_at) {
        int closed = n_markers > close_at;
        for (struct block *b = blocks; b; b = b->next) {
            uint64_t execs = (closed ? b->execs_closed : b->execs) - b->execs_opened;
            if (execs) {
                fprintf(out, "tb %" PRIx64 " %" PRIu64 " %" PRIu64 "\n", b->vaddr, b->insns, execs);
            }
        }
    }
    fclose(out);
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0) {
            out_path = strdup(argv[i] + 4);
        } else if (strncmp(argv[i], "open=", 5) == 0) {
            open_at = strtoull(argv[i] + 5, NULL, 10);
        } else if (strncmp(argv[i], "close=", 6) == 0) {
            close_at = strtoull(argv[i] + 6, NULL, 10);
        } else {
            fprintf(stderr, "posterlite count plugin: unknown argument %s\n", argv[i]);
            return 1;
        }
    }
    if (!out_path) {
        fprintf(stderr, "posterlite count plugin: out=PATH is required\n");
        return 1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    qemu_plugin_register_atexit_cb(id, on_exit_write, NULL);
    return 0;
}
