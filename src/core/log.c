/* Levelled logging to stderr; level from CP2P_LOG, read once. Lines at
 * error, warn and info are rate-limited per format string (log.h): a fixed
 * table of formats, each with its window's count and the lines it
 * suppressed, under one mutex (store writes log from libuv's pool). */
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cp2p/log.h"

static int g_level = -1;

#define SLOTS 64 /* formats tracked at once; more evict the stalest */
#define PROBE 8  /* slots a format may take, from its hash on */
#define LIKE_MAX 200 /* bytes of a format's last line kept to describe what was suppressed */

typedef struct {
    const char *module, *fmt; /* NULL fmt: free */
    cp2p_log_level_t level;
    unsigned key;
    uint64_t start_ns;   /* this window's first line */
    unsigned shown;      /* lines written in this window */
    uint64_t suppressed; /* lines not written in this window */
    char like[LIKE_MAX]; /* the last line written, without its time and level */
} slot_t;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static slot_t g_slots[SLOTS];
static unsigned g_burst = CP2P_LOG_DEFAULT_BURST;
static uint64_t g_window_ns = CP2P_LOG_DEFAULT_WINDOW_MS * 1000000ULL;
static const char *const g_tags[] = {"ERROR", "WARN", "INFO", "DEBUG", "TRACE"};

int cp2p_log_parse_level(const char *s)
{
    static const char *names[] = {"error", "warn", "info", "debug", "trace"};
    for (int i = 0; i < 5; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    if (strcmp(s, "warning") == 0)
        return CP2P_LOG_WARN;
    return -1;
}

cp2p_log_level_t cp2p_log_get_level(void)
{
    if (g_level < 0) {
        const char *e = getenv("CP2P_LOG");
        int l = e ? cp2p_log_parse_level(e) : -1;
        g_level = l < 0 ? CP2P_LOG_WARN : l;
    }
    return (cp2p_log_level_t)g_level;
}

void cp2p_log_set_level(cp2p_log_level_t level)
{
    g_level = (int)level;
}

int cp2p_log_enabled(cp2p_log_level_t level)
{
    return (int)level <= (int)cp2p_log_get_level();
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* "hh:mm:ss.mmm LEVEL module: " into line; its length. */
static int prefix(char *line, size_t cap, cp2p_log_level_t level, const char *module)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int off = snprintf(line, cap, "%02d:%02d:%02d.%03ld %-5s %s: ", tm.tm_hour, tm.tm_min,
                       tm.tm_sec, ts.tv_nsec / 1000000, g_tags[level], module);
    return off < 0 ? 0 : (size_t)off < cap ? off : (int)cap - 1;
}

static cp2p_log_handler_fn g_handler;
static void *g_handler_arg;

void cp2p_log_set_handler(cp2p_log_handler_fn fn, void *arg)
{
    pthread_mutex_lock(&g_mu);
    g_handler = fn;
    g_handler_arg = arg;
    pthread_mutex_unlock(&g_mu);
}

/* One finished line: to the program's handler (without the time and level
 * prefix, which it has as arguments), or to stderr. Under g_mu. */
static void emit(cp2p_log_level_t level, const char *module, const char *line, int off)
{
    if (g_handler)
        g_handler(level, module, line + off, g_handler_arg);
    else
        fprintf(stderr, "%s\n", line);
}

/* The line saying what s suppressed; s's count starts again. Under g_mu. */
static void report(slot_t *s, uint64_t now)
{
    if (!s->suppressed)
        return;
    char line[1024];
    int off = prefix(line, sizeof line, s->level, s->module);
    uint64_t secs = (now - s->start_ns + 999999999ULL) / 1000000000ULL;
    snprintf(line + off, sizeof line - (size_t)off,
             "suppressed %llu similar line%s in the last %llu s, like: %s",
             (unsigned long long)s->suppressed, s->suppressed == 1 ? "" : "s",
             (unsigned long long)secs, s->like);
    emit(s->level, s->module, line, off);
    s->suppressed = 0;
}

/* Report the formats whose window ended with lines suppressed. Under g_mu. */
static void report_ended(uint64_t now)
{
    for (size_t i = 0; i < SLOTS; i++)
        if (g_slots[i].suppressed && now - g_slots[i].start_ns >= g_window_ns)
            report(&g_slots[i], now);
}

/* The slot of (level, module, key, fmt), taken if need be: a free one, else the
 * one whose window started first (its suppressed lines reported). */
static slot_t *slot_of(cp2p_log_level_t level, const char *module, unsigned key, const char *fmt,
                       uint64_t now)
{
    uint64_t h = ((uint64_t)(uintptr_t)fmt ^ ((uint64_t)key << 40)) * 0x9E3779B97F4A7C15ULL;
    size_t first = (size_t)(h >> 58); /* SLOTS is 2^6 */
    slot_t *victim = NULL;
    for (size_t i = 0; i < PROBE; i++) {
        slot_t *s = &g_slots[(first + i) % SLOTS];
        if (s->fmt == fmt && s->key == key && s->level == level &&
            (s->module == module || strcmp(s->module, module) == 0))
            return s;
        if (!s->fmt) {
            if (!victim || victim->fmt)
                victim = s;
        } else if (!victim || (victim->fmt && s->start_ns < victim->start_ns)) {
            victim = s;
        }
    }
    if (victim->fmt)
        report(victim, now);
    memset(victim, 0, sizeof *victim);
    victim->module = module;
    victim->fmt = fmt;
    victim->level = level;
    victim->key = key;
    victim->start_ns = now;
    return victim;
}

void cp2p_log_set_rate_limit(unsigned lines, unsigned window_ms)
{
    pthread_mutex_lock(&g_mu);
    uint64_t now = mono_ns();
    for (size_t i = 0; i < SLOTS; i++)
        report(&g_slots[i], now);
    memset(g_slots, 0, sizeof g_slots);
    g_burst = lines;
    g_window_ns = (uint64_t)window_ms * 1000000ULL;
    pthread_mutex_unlock(&g_mu);
}

void cp2p_log_flush(void)
{
    pthread_mutex_lock(&g_mu);
    uint64_t now = mono_ns();
    for (size_t i = 0; i < SLOTS; i++)
        report(&g_slots[i], now);
    pthread_mutex_unlock(&g_mu);
}

/* A process that ends says what it suppressed last. */
__attribute__((destructor)) static void flush_at_exit(void)
{
    cp2p_log_flush();
}

__attribute__((format(printf, 4, 0))) static void vwrite(cp2p_log_level_t level,
                                                         const char *module, unsigned key,
                                                         const char *fmt, va_list ap)
{
    if (!fmt)
        return;
    if ((unsigned)level > CP2P_LOG_TRACE)
        level = CP2P_LOG_TRACE;
    if (!module)
        module = "";
    int limited = level <= CP2P_LOG_INFO;
    slot_t *s = NULL;
    pthread_mutex_lock(&g_mu);
    if (limited && g_burst) {
        uint64_t now = mono_ns();
        s = slot_of(level, module, key, fmt, now);
        if (now - s->start_ns >= g_window_ns) {
            report(s, now);
            s->start_ns = now;
            s->shown = 0;
        }
        if (s->shown >= g_burst) {
            s->suppressed++;
            pthread_mutex_unlock(&g_mu);
            return;
        }
        s->shown++;
        report_ended(now);
    }
    char line[1024];
    int off = prefix(line, sizeof line, level, module);
    vsnprintf(line + off, sizeof line - (size_t)off, fmt, ap);
    if (s)
        snprintf(s->like, sizeof s->like, "%s", line + off);
    emit(level, module, line, off);
    pthread_mutex_unlock(&g_mu);
}

void cp2p_log_write(cp2p_log_level_t level, const char *module, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vwrite(level, module, 0, fmt, ap);
    va_end(ap);
}

void cp2p_log_write_key(cp2p_log_level_t level, const char *module, unsigned key,
                        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vwrite(level, module, key, fmt, ap);
    va_end(ap);
}
