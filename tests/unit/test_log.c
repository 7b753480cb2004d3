/* Logging: repeated lines are rate-limited per format (and key) and the
 * lines suppressed are counted in one line once the window is over; debug
 * is not limited; the table of formats stays bounded. stderr is captured in
 * a temporary file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "cp2p/log.h"

static FILE *g_cap;
static int g_saved = -1;
static char g_out[1 << 20];

static void capture(void)
{
    fflush(stderr);
    g_cap = tmpfile();
    assert_non_null(g_cap);
    g_saved = dup(2);
    assert_true(g_saved >= 0);
    assert_int_equal(dup2(fileno(g_cap), 2), 2);
}

/* Stop capturing; what was written, in g_out. */
static const char *captured(void)
{
    fflush(stderr);
    assert_int_equal(dup2(g_saved, 2), 2);
    close(g_saved);
    rewind(g_cap);
    size_t n = fread(g_out, 1, sizeof g_out - 1, g_cap);
    g_out[n] = 0;
    fclose(g_cap);
    return g_out;
}

static size_t count(const char *text, const char *needle)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static size_t lines(const char *text)
{
    return count(text, "\n");
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The defaults: of 3000 lines of one format, 5 are written; the count of
 * the rest comes at the latest with a flush. */
static void test_default_limit(void **state)
{
    capture();
    for (int i = 0; i < 3000; i++)
        cp2p_log_write(CP2P_LOG_WARN, "kad", "cannot store record %d: store full", i);
    const char *out = captured();
    assert_int_equal(lines(out), CP2P_LOG_DEFAULT_BURST);
    assert_non_null(strstr(out, "WARN  kad: cannot store record 0: store full\n"));
    assert_non_null(strstr(out, "cannot store record 4: store full\n"));
    assert_null(strstr(out, "cannot store record 5:"));

    capture();
    cp2p_log_flush();
    out = captured();
    assert_int_equal(lines(out), 1);
    assert_non_null(strstr(out, "WARN  kad: suppressed 2995 similar lines in the last "));
    assert_non_null(strstr(out, ", like: cannot store record 4: store full\n"));
    /* Reported once only. */
    capture();
    cp2p_log_flush();
    assert_int_equal(lines(captured()), 0);
}

/* After the window, the next line of the format comes after the count of
 * those suppressed, and the format has its lines again. */
static void test_window_ends(void **state)
{
    cp2p_log_set_rate_limit(3, 200);
    capture();
    for (int i = 0; i < 10; i++)
        cp2p_log_write(CP2P_LOG_INFO, "swarm", "refused %d", i);
    sleep_ms(300);
    for (int i = 10; i < 20; i++)
        cp2p_log_write(CP2P_LOG_INFO, "swarm", "refused %d", i);
    const char *out = captured();
    assert_int_equal(lines(out), 3 + 1 + 3);
    const char *sum = strstr(out, "INFO  swarm: suppressed 7 similar lines in the last 1 s, "
                                  "like: refused 2\n");
    assert_non_null(sum);
    assert_true(sum < strstr(out, "refused 10\n"));
    assert_null(strstr(out, "refused 3\n"));
    assert_non_null(strstr(out, "refused 12\n"));
    assert_null(strstr(out, "refused 13\n"));
    capture();
    cp2p_log_flush();
    assert_non_null(strstr(captured(), "suppressed 7 similar lines"));
}

/* Another format's line after the window brings the count too (the
 * flooding format need not come back). */
static void test_reported_by_other_lines(void **state)
{
    cp2p_log_set_rate_limit(2, 100);
    capture();
    for (int i = 0; i < 5; i++)
        cp2p_log_write(CP2P_LOG_ERROR, "kad", "datastore write %d failed", i);
    sleep_ms(200);
    cp2p_log_write(CP2P_LOG_WARN, "tcp", "accept failed");
    const char *out = captured();
    assert_int_equal(lines(out), 2 + 1 + 1);
    assert_true(strstr(out, "ERROR kad: suppressed 3 similar lines") <
                strstr(out, "WARN  tcp: accept failed"));
}

/* Formats, levels and keys are limited apart; debug and trace are not limited. */
static void test_apart(void **state)
{
    cp2p_log_set_rate_limit(2, 10000);
    capture();
    for (int i = 0; i < 10; i++) {
        cp2p_log_write(CP2P_LOG_WARN, "a", "first %d", i);
        cp2p_log_write(CP2P_LOG_WARN, "a", "second %d", i);
        cp2p_log_write_key(CP2P_LOG_INFO, "a", 1, "keyed %d", i);
        cp2p_log_write_key(CP2P_LOG_INFO, "a", 2, "keyed %d", i);
        cp2p_log_write(CP2P_LOG_DEBUG, "a", "debug %d", i);
        cp2p_log_write(CP2P_LOG_TRACE, "a", "trace %d", i);
    }
    const char *out = captured();
    assert_int_equal(count(out, ": first "), 2);
    assert_int_equal(count(out, ": second "), 2);
    assert_int_equal(count(out, ": keyed "), 4);
    assert_int_equal(count(out, ": debug "), 10);
    assert_int_equal(count(out, ": trace "), 10);
    assert_int_equal(lines(out), 28);
    capture();
    cp2p_log_flush();
    out = captured();
    assert_int_equal(lines(out), 4);
    assert_int_equal(count(out, "suppressed 8 similar lines"), 4);
}

/* No limit when asked. */
static void test_unlimited(void **state)
{
    cp2p_log_set_rate_limit(0, 10000);
    capture();
    for (int i = 0; i < 100; i++)
        cp2p_log_write(CP2P_LOG_WARN, "a", "line %d", i);
    assert_int_equal(lines(captured()), 100);
}

/* A thousand formats in a table of 64: the one that flooded is evicted in
 * time, and its count reported then. */
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
#pragma GCC diagnostic ignored "-Wformat-security"
static void test_bounded(void **state)
{
    static char fmts[1000][24];
    cp2p_log_set_rate_limit(1, 60000);
    capture();
    for (int i = 0; i < 20; i++)
        cp2p_log_write(CP2P_LOG_WARN, "a", "flood %d", i);
    for (int i = 0; i < 1000; i++) {
        snprintf(fmts[i], sizeof fmts[i], "format %d", i);
        cp2p_log_write(CP2P_LOG_WARN, "a", fmts[i]);
    }
    const char *out = captured();
    assert_int_equal(count(out, "suppressed 19 similar lines in the last "), 1);
    assert_int_equal(count(out, ": format "), 1000);
    assert_int_equal(lines(out), 1 + 1 + 1000);
    cp2p_log_set_rate_limit(CP2P_LOG_DEFAULT_BURST, CP2P_LOG_DEFAULT_WINDOW_MS);
}

typedef struct seen {
    int n;
    cp2p_log_level_t level;
    char module[32], message[256];
} seen_t;

static void handler(cp2p_log_level_t level, const char *module, const char *message, void *arg)
{
    seen_t *s = arg;
    s->n++;
    s->level = level;
    snprintf(s->module, sizeof s->module, "%s", module);
    snprintf(s->message, sizeof s->message, "%s", message);
}

/* A program's handler gets the lines instead of stderr: level, module and
 * the message alone; NULL puts stderr back. */
static void test_handler(void **state)
{
    seen_t seen = {0};
    cp2p_log_set_rate_limit(CP2P_LOG_DEFAULT_BURST, CP2P_LOG_DEFAULT_WINDOW_MS);
    cp2p_log_set_level(CP2P_LOG_INFO);
    capture();
    cp2p_log_set_handler(handler, &seen);
    cp2p_log_warn("test", "to the handler %d", 42);
    cp2p_log_debug("test", "below the level");
    for (int i = 0; i < 10; i++)
        cp2p_log_info("flood", "line %d", i); /* limited before the handler */
    cp2p_log_flush();
    cp2p_log_set_handler(NULL, NULL);
    cp2p_log_warn("test", "back on stderr");
    const char *out = captured();
    assert_int_equal(seen.n, 1 + CP2P_LOG_DEFAULT_BURST + 1);
    assert_int_equal(seen.level, CP2P_LOG_INFO);
    assert_string_equal(seen.module, "flood");
    assert_non_null(strstr(seen.message, "suppressed 5 similar lines"));
    assert_int_equal(count(out, "to the handler"), 0);
    assert_int_equal(lines(out), 1);
    assert_non_null(strstr(out, "WARN  test: back on stderr"));
    cp2p_log_set_level(CP2P_LOG_WARN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_limit),
        cmocka_unit_test(test_window_ends),
        cmocka_unit_test(test_reported_by_other_lines),
        cmocka_unit_test(test_apart),
        cmocka_unit_test(test_unlimited),
        cmocka_unit_test(test_bounded),
        cmocka_unit_test(test_handler),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
