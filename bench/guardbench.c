/* guard-bench: the accept-time block check with a million active blocks.
 *
 * Fills the guard with -n blocks (default 1,000,000: IPv4 /32, plus a tenth
 * as many IPv6 /64), then times, in random order over the whole table:
 *   - guard_blocked() for blocked addresses (hits) and for addresses that
 *     are not blocked (misses), IPv4 and IPv6;
 *   - guard_connect() for a blocked address (what the accept path runs);
 *   - misses again once some /24 blocks exist too (two prefix lengths to look at);
 *   - the same hit/miss mix from -t threads at once;
 *   - hits with /24 blocks in use too, and IPv6 with /48 blocks beside /64.
 * Reports ns per check, memory per blocked prefix (everything, and the
 * accept-time index alone), then fills a second guard with -n plain counted
 * prefixes (bytes per tracked entry: guard_stats and resident growth) and
 * sprays -n fresh addresses through a third bounded at a quarter of that
 * (ns per connection, entries left, evictions).
 *
 * Usage: guard-bench [-n BLOCKS] [-q QUERIES] [-t THREADS]
 * Last line: RESULT guard blocks=.. hit_ns=.. miss_ns=.. ... */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/addr.h"
#include "base/config.h"
#include "guard/guard.h"

static const int64_t NOW = 1795000000000LL;   /* a fixed "now" (ms) */

/* The calling thread's CPU time: what a check costs, without the time the
 * thread spent preempted by other work on a shared machine. */
static uint64_t ns_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static long rss_kb(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = 0;
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* xorshift64*: a fast deterministic generator for addresses and order. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

/* The i-th blocked IPv4 address: a bijection of i over 32 bits (odd
 * multiplier), kept out of 127/8 and 0/8 so misses can come from there. */
static uint32_t v4_of(uint64_t i)
{
    uint32_t x = (uint32_t)(i * 2654435761u);
    uint32_t top = (x >> 24) % 200 + 1;     /* 1..200 */
    if (top == 127)
        top = 201;
    return (top << 24) | (x & 0xffffff);
}

static struct addr mk4(uint32_t v, int bits)
{
    struct addr a = {.family = AF_INET, .bits = 32};
    a.b[0] = (uint8_t)(v >> 24);
    a.b[1] = (uint8_t)(v >> 16);
    a.b[2] = (uint8_t)(v >> 8);
    a.b[3] = (uint8_t)v;
    if (bits != 32)
        addr_cut(&a, bits);
    return a;
}

static struct addr mk6(uint64_t net, uint64_t host, int bits)
{
    struct addr a = {.family = AF_INET6, .bits = 128};
    a.b[0] = 0x20;
    a.b[1] = 0x01;
    a.b[2] = 0x0d;
    a.b[3] = 0xb8;
    for (int k = 0; k < 4; k++)
        a.b[4 + k] = (uint8_t)(net >> (24 - 8 * k));
    for (int k = 0; k < 8; k++)
        a.b[8 + k] = (uint8_t)(host >> (56 - 8 * k));
    if (bits != 128)
        addr_cut(&a, bits);
    return a;
}

struct run {
    struct guard *g;
    const struct addr *q;
    size_t nq;
    size_t rounds;
    size_t hits;
    double ns;
};

static int g_rounds = 5;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ns per guard_blocked() over the queries: the median of g_rounds passes,
 * so that a pass the machine's other work preempted does not decide. */
static double time_blocked(struct guard *g, const struct addr *q, size_t nq, size_t *hits)
{
    double v[64];
    size_t h = 0;
    for (int r = 0; r < g_rounds; r++) {
        h = 0;
        uint64_t t0 = ns_now();
        for (size_t i = 0; i < nq; i++)
            h += guard_blocked(g, &q[i], NOW);
        v[r] = (double)(ns_now() - t0) / (double)nq;
    }
    *hits = h;
    return median(v, g_rounds);
}

static void *thread_run(void *arg)
{
    struct run *r = arg;
    size_t h = 0;
    double v[64];
    for (size_t k = 0; k < r->rounds; k++) {
        uint64_t t0 = ns_now();
        for (size_t i = 0; i < r->nq; i++)
            h += guard_blocked(r->g, &r->q[i], NOW);
        v[k] = (double)(ns_now() - t0) / (double)r->nq;
    }
    r->ns = median(v, (int)r->rounds);
    r->hits = h;
    return NULL;
}

/* Counting entries, measured in a child process so that its resident
 * growth is its own (the parent's freed blocks would be reused): fill a
 * guard with n plain counted prefixes, then spray n fresh addresses
 * through another bounded at a quarter of that. */
struct tracked_result {
    size_t n, spray_entries;
    long bound;
    double bytes_per, rss_per, spray_ns;
    uint64_t spray_evictions;
};

static void tracked_child(struct config *cfg, size_t n, struct tracked_result *r)
{
    struct guard_block made;
    bool did;
    r->n = n;
    cfg->max_tracked = (long)n;
    long rss0 = rss_kb();
    struct guard *g = guard_new();
    for (size_t i = 0; i < n; i++) {
        struct addr a = mk4(v4_of(i), 32);
        guard_connect(g, cfg, &a, NOW, &made, &did);
        guard_disconnect(g, cfg, &a);
    }
    long rss1 = rss_kb();
    struct guard_stats st;
    guard_stats(g, NOW, &st);
    r->bytes_per = (double)st.bytes / (double)st.entries;
    r->rss_per = (double)(rss1 - rss0) * 1024.0 / (double)st.entries;
    guard_free(g);

    r->bound = (long)(n / 4 > 100 ? n / 4 : 100);
    cfg->max_tracked = r->bound;
    g = guard_new();
    uint64_t t0 = ns_now();
    for (size_t i = 0; i < n; i++) {
        struct addr a = mk4(v4_of(i), 32);
        guard_connect(g, cfg, &a, NOW + (int64_t)(i / 1000), &made, &did);
        guard_disconnect(g, cfg, &a);
    }
    r->spray_ns = (double)(ns_now() - t0) / (double)n;
    guard_stats(g, NOW, &st);
    r->spray_entries = st.entries;
    r->spray_evictions = st.evictions;
    guard_free(g);
}

static bool run_tracked(struct config *cfg, size_t n, struct tracked_result *r)
{
    int fd[2];
    if (pipe(fd) != 0)
        return false;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return false;
    if (pid == 0) {
        close(fd[0]);
        tracked_child(cfg, n, r);
        _exit(write(fd[1], r, sizeof *r) == (ssize_t)sizeof *r ? 0 : 1);
    }
    close(fd[1]);
    bool ok = read(fd[0], r, sizeof *r) == (ssize_t)sizeof *r;
    close(fd[0]);
    int st;
    waitpid(pid, &st, 0);
    if (!ok)
        fprintf(stderr, "guard-bench: the counting-entries child failed\n");
    return ok;
}

int main(int argc, char **argv)
{
    size_t nblocks = 1000000, nq = 1000000;
    int threads = 2;
    int opt;
    while ((opt = getopt(argc, argv, "n:q:t:r:h")) != -1) {
        switch (opt) {
        case 'r': g_rounds = atoi(optarg); break;
        case 'n': nblocks = strtoul(optarg, NULL, 10); break;
        case 'q': nq = strtoul(optarg, NULL, 10); break;
        case 't': threads = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: guard-bench [-n BLOCKS] [-q QUERIES] [-t THREADS] [-r ROUNDS]\n");
            return opt == 'h' ? 0 : 2;
        }
    }
    if (nblocks < 10 || nq < 1000 || threads < 1 || threads > 64 || g_rounds < 1 || g_rounds > 64) {
        fprintf(stderr, "guard-bench: need -n >= 10, -q >= 1000, 1 <= -t <= 64, 1 <= -r <= 64\n");
        return 2;
    }
    size_t n6 = nblocks / 10;

    struct config *cfg = config_defaults("/tmp");
    struct guard *g = guard_new();
    if (!cfg || !g) {
        fprintf(stderr, "guard-bench: out of memory\n");
        return 1;
    }

    struct tracked_result tr;
    if (!run_tracked(cfg, nblocks, &tr))
        return 1;

    /* ---- fill ---- */
    long rss0 = rss_kb();
    uint64_t t0 = ns_now();
    struct guard_block made, replaced;
    bool had_old;
    for (size_t i = 0; i < nblocks; i++) {
        struct addr p = mk4(v4_of(i), 32);
        /* a mix of temporary (1 h) and permanent blocks */
        guard_block_manual(g, &p, (i & 1) ? 3600000 : -1, NOW, &made, &replaced, &had_old);
    }
    for (size_t i = 0; i < n6; i++) {
        struct addr p = mk6(i * 7919u, 0, 64);
        guard_block_manual(g, &p, 3600000, NOW, &made, &replaced, &had_old);
    }
    double fill_ns = (double)(ns_now() - t0) / (double)(nblocks + n6);
    long rss1 = rss_kb();
    struct guard_stats st;
    guard_stats(g, NOW, &st);
    double per_prefix = (double)st.bytes / (double)st.entries;

    /* ---- queries (generated first, so only the check is timed) ---- */
    struct addr *hit4 = malloc(nq * sizeof *hit4), *miss4 = malloc(nq * sizeof *miss4);
    struct addr *hit6 = malloc(nq * sizeof *hit6), *miss6 = malloc(nq * sizeof *miss6);
    struct addr *mix = malloc(nq * sizeof *mix);
    if (!hit4 || !miss4 || !hit6 || !miss6 || !mix) {
        fprintf(stderr, "guard-bench: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < nq; i++) {
        hit4[i] = mk4(v4_of(rnd() % nblocks), 32);
        /* 0.x.y.z is never blocked (v4_of keeps the top octet in 1..201) */
        miss4[i] = mk4((uint32_t)(rnd() & 0x00ffffff) | (220u << 24), 32);
        hit6[i] = mk6((rnd() % n6) * 7919u, rnd(), 128);
        miss6[i] = mk6(0xfffff000u + (uint32_t)(rnd() % 4096), rnd(), 128);
        mix[i] = (i & 1) ? hit4[i] : miss4[i];
    }

    size_t h;
    /* warm the caches and branch predictors a little, as a running server is */
    time_blocked(g, hit4, nq / 10, &h);
    double hit_ns = time_blocked(g, hit4, nq, &h);
    if (h != nq) {
        fprintf(stderr, "guard-bench: FAIL: %zu of %zu blocked addresses not found blocked\n", nq - h, nq);
        return 1;
    }
    double miss_ns = time_blocked(g, miss4, nq, &h);
    if (h != 0) {
        fprintf(stderr, "guard-bench: FAIL: %zu unblocked addresses found blocked\n", h);
        return 1;
    }
    double hit6_ns = time_blocked(g, hit6, nq, &h);
    if (h != nq) {
        fprintf(stderr, "guard-bench: FAIL: IPv6 hits %zu of %zu\n", h, nq);
        return 1;
    }
    double miss6_ns = time_blocked(g, miss6, nq, &h);
    if (h != 0) {
        fprintf(stderr, "guard-bench: FAIL: IPv6 misses found blocked: %zu\n", h);
        return 1;
    }

    /* guard_connect() for a blocked client: the whole accept-time verdict */
    double cv[64];
    size_t rejected = 0;
    for (int r = 0; r < g_rounds; r++) {
        rejected = 0;
        uint64_t c0 = ns_now();
        for (size_t i = 0; i < nq; i++) {
            bool did;
            rejected += guard_connect(g, cfg, &hit4[i], NOW, &made, &did) == GUARD_REJECT_BLOCKED;
        }
        cv[r] = (double)(ns_now() - c0) / (double)nq;
    }
    double connect_hit_ns = median(cv, g_rounds);
    if (rejected != nq) {
        fprintf(stderr, "guard-bench: FAIL: guard_connect let %zu blocked clients in\n", nq - rejected);
        return 1;
    }

    /* threads: the hit/miss mix from several threads at once */
    size_t per = nq / (size_t)threads;
    struct run *runs = calloc((size_t)threads, sizeof *runs);
    pthread_t *tids = calloc((size_t)threads, sizeof *tids);
    if (!runs || !tids)
        return 1;
    for (int i = 0; i < threads; i++) {
        runs[i] = (struct run){.g = g, .q = mix + (size_t)i * per, .nq = per, .rounds = (size_t)g_rounds};
        pthread_create(&tids[i], NULL, thread_run, &runs[i]);
    }
    double mt_ns = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(tids[i], NULL);
        if (runs[i].ns > mt_ns)
            mt_ns = runs[i].ns;
    }

    /* a second prefix length in use: 1000 /24 blocks elsewhere */
    for (uint32_t i = 0; i < 1000; i++) {
        struct addr p = mk4((230u << 24) | (i << 8), 24);
        guard_block_manual(g, &p, 3600000, NOW, &made, &replaced, &had_old);
    }
    double miss2_ns = time_blocked(g, miss4, nq, &h);
    if (h != 0) {
        fprintf(stderr, "guard-bench: FAIL: misses found blocked with /24 blocks: %zu\n", h);
        return 1;
    }
    struct addr in24 = mk4((230u << 24) | (5u << 8) | 77u, 32);
    if (!guard_blocked(g, &in24, NOW)) {
        fprintf(stderr, "guard-bench: FAIL: an address inside a blocked /24 is not blocked\n");
        return 1;
    }
    double hit2_ns = time_blocked(g, hit4, nq, &h);
    if (h != nq) {
        fprintf(stderr, "guard-bench: FAIL: hits with /24 blocks: %zu of %zu\n", h, nq);
        return 1;
    }
    /* and for IPv6, 1000 /48 blocks beside the /64 ones */
    for (uint32_t i = 0; i < 1000; i++) {
        struct addr p = mk6(0xfff00000u + (i << 8), 0, 48);
        guard_block_manual(g, &p, 3600000, NOW, &made, &replaced, &had_old);
    }
    double hit6b_ns = time_blocked(g, hit6, nq, &h);
    if (h != nq) {
        fprintf(stderr, "guard-bench: FAIL: IPv6 hits with /48 blocks: %zu of %zu\n", h, nq);
        return 1;
    }
    double miss6b_ns = time_blocked(g, miss6, nq, &h);
    if (h != 0) {
        fprintf(stderr, "guard-bench: FAIL: IPv6 misses found blocked with /48 blocks: %zu\n", h);
        return 1;
    }
    struct guard_stats ist;
    guard_stats(g, NOW, &ist);
    double index_per = (double)ist.index_bytes / (double)ist.index_prefixes;
    size_t index_prefixes = ist.index_prefixes;
    guard_free(g);
    g = NULL;


    double rss_per = (double)(rss1 - rss0) * 1024.0 / (double)(nblocks + n6);
    printf("guard-bench: %zu IPv4 /32 + %zu IPv6 /64 blocks in force (%zu permanent), %zu queries each,\n"
           "  random order over the table; thread CPU time per call, the median of %d passes\n",
           nblocks, n6, st.permanent, nq, g_rounds);
    printf("  fill                      %8.1f ns per block\n", fill_ns);
    printf("  guard_blocked IPv4 hit    %8.1f ns\n", hit_ns);
    printf("  guard_blocked IPv4 miss   %8.1f ns\n", miss_ns);
    printf("  guard_blocked IPv6 hit    %8.1f ns\n", hit6_ns);
    printf("  guard_blocked IPv6 miss   %8.1f ns\n", miss6_ns);
    printf("  guard_connect blocked     %8.1f ns\n", connect_hit_ns);
    printf("  IPv4 miss, /32 and /24 blocks in use %8.1f ns\n", miss2_ns);
    printf("  IPv4 hit,  /32 and /24 blocks in use %8.1f ns\n", hit2_ns);
    printf("  IPv6 hit,  /64 and /48 blocks in use %8.1f ns\n", hit6b_ns);
    printf("  IPv6 miss, /64 and /48 blocks in use %8.1f ns\n", miss6b_ns);
    printf("  %d threads, hit/miss mix  %8.1f ns per check per thread (slowest thread, median of %d passes)\n",
           threads, mt_ns, g_rounds);
    printf("  memory: %zu prefixes tracked, table %.1f MB, %.1f bytes per prefix "
           "(entry %zu bytes), resident growth %.1f bytes per prefix\n",
           st.entries, (double)st.bytes / 1048576.0, per_prefix, st.entry_size, rss_per);
    printf("  accept-time index: %zu blocked prefixes, %.1f bytes per blocked prefix\n",
           index_prefixes, index_per);
    printf("  counting entries: %zu tracked prefixes, %.1f bytes each (table), resident growth %.1f bytes each\n",
           tr.n, tr.bytes_per, tr.rss_per);
    printf("  spray of %zu fresh addresses at max_tracked = %ld: %.1f ns per connection, "
           "%zu tracked after, %llu evicted\n", tr.n, tr.bound, tr.spray_ns, tr.spray_entries,
           (unsigned long long)tr.spray_evictions);
    printf("RESULT guard blocks=%zu hit_ns=%.1f miss_ns=%.1f hit6_ns=%.1f miss6_ns=%.1f "
           "connect_hit_ns=%.1f miss_two_lengths_ns=%.1f hit_two_lengths_ns=%.1f "
           "hit6_two_lengths_ns=%.1f miss6_two_lengths_ns=%.1f mt_ns=%.1f threads=%d fill_ns=%.1f "
           "bytes_per_prefix=%.1f entry_size=%zu rss_per_prefix=%.1f index_bytes_per_prefix=%.1f "
           "tracked_bytes_per_prefix=%.1f tracked_rss_per_prefix=%.1f spray_ns=%.1f\n",
           nblocks + n6, hit_ns, miss_ns, hit6_ns, miss6_ns, connect_hit_ns, miss2_ns, hit2_ns,
           hit6b_ns, miss6b_ns, mt_ns, threads, fill_ns, per_prefix, st.entry_size, rss_per,
           index_per, tr.bytes_per, tr.rss_per, tr.spray_ns);

    free(hit4);
    free(miss4);
    free(hit6);
    free(miss6);
    free(mix);
    free(runs);
    free(tids);
    config_unref(cfg);
    return 0;
}
