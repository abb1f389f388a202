/*
 * Checks the benchmark statistics (mean, sample stddev, min/max, median,
 * NaN handling, numerical stability) and SHA-256 against the FIPS 180-4 /
 * NIST example vectors, fed whole and in awkward pieces.
 */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/sha256.h"
#include "bench/stats.h"
#include "test.h"

static bool close_to(double a, double b, double tol)
{
    return fabs(a - b) <= tol * (fabs(b) > 1 ? fabs(b) : 1);
}

static void test_stats_known(void)
{
    const double x[] = {2, 4, 4, 4, 5, 5, 7, 9};
    bench_stats s;
    bench_stats_compute(x, 8, &s);
    CHECK(s.n == 8);
    CHECK(close_to(s.mean, 5.0, 1e-15));
    /* Sum of squared deviations is 32; sample variance 32/7. */
    CHECKF(close_to(s.stddev, sqrt(32.0 / 7.0), 1e-14), "stddev %.17g", s.stddev);
    CHECK(s.min == 2 && s.max == 9);
    CHECK(s.median == 4.5);
    const double odd[] = {3, 1, 2};
    bench_stats_compute(odd, 3, &s);
    CHECK(s.median == 2 && s.min == 1 && s.max == 3 && close_to(s.stddev, 1.0, 1e-15));
}

static void test_stats_edges(void)
{
    bench_stats s;
    bench_stats_compute(NULL, 0, &s);
    CHECK(s.n == 0 && s.mean == 0 && s.stddev == 0 && s.min == 0 && s.max == 0);
    const double one[] = {42.5};
    bench_stats_compute(one, 1, &s);
    CHECK(s.n == 1 && s.mean == 42.5 && s.stddev == 0 && s.min == 42.5 && s.max == 42.5);
    const double with_nan[] = {NAN, 1.0, NAN, 3.0};
    bench_stats_compute(with_nan, 4, &s);
    CHECK(s.n == 2 && s.mean == 2.0 && s.min == 1.0 && s.max == 3.0);
    CHECK(close_to(s.stddev, sqrt(2.0), 1e-15));
    const double neg[] = {-5, -1, -3};
    bench_stats_compute(neg, 3, &s);
    CHECK(s.min == -5 && s.max == -1 && s.mean == -3);
}

/* Values 1e9 + {1, 2, 3}: the naive sum-of-squares formula loses the whole
 * spread in double precision; the answer must still be 1. */
static void test_stats_stable(void)
{
    const double x[] = {1e9 + 1, 1e9 + 2, 1e9 + 3};
    bench_stats s;
    bench_stats_compute(x, 3, &s);
    CHECKF(close_to(s.stddev, 1.0, 1e-6), "stddev %.17g", s.stddev);
    CHECK(s.mean == 1e9 + 2);
}

static void test_tokens_per_s(void)
{
    CHECK(bench_tokens_per_s(128, 2000000000LL) == 64.0);
    CHECK(bench_tokens_per_s(1, 0) == 0.0);
    CHECK(close_to(bench_tokens_per_s(512, 1234567890LL), 512 / 1.23456789, 1e-12));
}

static void test_sha256_vectors(void)
{
    static const struct {
        const char *msg, *hex;
    } v[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrl"
         "m"
         "nopqrsmnopqrstnopqrstu",
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char hex[65];
        sha256_hex(v[i].msg, strlen(v[i].msg), hex);
        CHECKF(!strcmp(hex, v[i].hex), "vector %zu: %s", i, hex);
    }
}

/* One million 'a' (the NIST long vector) fed in pieces of varying sizes
 * that straddle the 64-byte block and the 56-byte padding boundary. */
static void test_sha256_pieces(void)
{
    enum { N = 1000000 };
    char *buf = malloc(N);
    CHECK(buf);
    memset(buf, 'a', N);
    sha256_ctx c;
    sha256_init(&c);
    size_t off = 0, step = 1;
    while (off < N) {
        size_t take = step < N - off ? step : N - off;
        sha256_update(&c, buf + off, take);
        off += take;
        step = step * 7 % 191 + 1;
    }
    uint8_t d[32];
    sha256_final(&c, d);
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    free(buf);
    CHECKF(!strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
           "million a: %s", hex);
}

/* The file digest equals the buffer digest, across the 1 MiB read chunk. */
static void test_sha256_file(void)
{
    char path[] = "/tmp/loft-test-sha-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    size_t n = (1u << 20) + 1000;
    unsigned char *buf = malloc(n);
    CHECK(buf);
    for (size_t i = 0; i < n; i++)
        buf[i] = (unsigned char)(i * 131 + 7);
    CHECK(write(fd, buf, n) == (ssize_t)n);
    close(fd);
    char a[65], b[65];
    loft_status st;
    sha256_hex(buf, n, a);
    loft_code rc = sha256_file_hex(path, b, &st);
    unlink(path);
    free(buf);
    CHECK(rc == LOFT_OK);
    CHECK(!strcmp(a, b));
    rc = sha256_file_hex("/nonexistent/loft-sha", b, &st);
    CHECK(rc == LOFT_ERR_IO && strstr(st.msg, "/nonexistent/loft-sha"));
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"stats_known", test_stats_known},       {"stats_edges", test_stats_edges},
        {"stats_stable", test_stats_stable},     {"tokens_per_s", test_tokens_per_s},
        {"sha256_vectors", test_sha256_vectors}, {"sha256_pieces", test_sha256_pieces},
        {"sha256_file", test_sha256_file},
    };
    return test_main(argc, argv, cases, TEST_COUNT(cases));
}
