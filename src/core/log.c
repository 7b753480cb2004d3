/* Levelled logging to stderr; level from CP2P_LOG, read once. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cp2p/log.h"

static int g_level = -1;

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

void cp2p_log_write(cp2p_log_level_t level, const char *module, const char *fmt, ...)
{
    static const char *tags[] = {"ERROR", "WARN", "INFO", "DEBUG", "TRACE"};
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char line[1024];
    int off = snprintf(line, sizeof line, "%02d:%02d:%02d.%03ld %-5s %s: ", tm.tm_hour,
                       tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, tags[level], module);
    va_list ap;
    va_start(ap, fmt);
    if (off > 0 && (size_t)off < sizeof line)
        vsnprintf(line + off, sizeof line - (size_t)off, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", line);
}
