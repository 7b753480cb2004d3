/** @file
 * Levelled logging, to stderr unless the program installs a handler
 * (cp2p_log_set_handler). The level comes from CP2P_LOG (error, warn, info,
 * debug, trace; default warn) or cp2p_log_set_level(). Every function here
 * is thread-safe (the DHT's store writes log from libuv's thread pool).
 *
 * Repeated lines are rate-limited, so that a flood of requests a peer sends
 * cannot flood the log: the lines at error, warn and info of one format
 * string (one call site, whatever its arguments) are written at most
 * CP2P_LOG_DEFAULT_BURST times in a window of CP2P_LOG_DEFAULT_WINDOW_MS
 * that starts at the first of them; the rest are counted, and once the
 * window is over one line says how many were suppressed ("suppressed 3927
 * similar lines in the last 10 s, like: (the last line written)"). That line
 * comes before the next line at error, warn or info (of any format) after
 * the window, or at the latest when the process exits or cp2p_log_flush()
 * is called. debug and trace are opt-in and never limited. At most 64
 * formats are tracked at once (more evict the stalest, whose count is
 * reported then). */
#ifndef CP2P_LOG_H
#define CP2P_LOG_H

#include "cp2p/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    CP2P_LOG_ERROR = 0,
    CP2P_LOG_WARN = 1,
    CP2P_LOG_INFO = 2,
    CP2P_LOG_DEBUG = 3,
    CP2P_LOG_TRACE = 4
} cp2p_log_level_t;

/** The level lines must reach to be written (CP2P_LOG_WARN unless the
 * environment's CP2P_LOG says otherwise), and the level now. */
CP2P_API void cp2p_log_set_level(cp2p_log_level_t level);
CP2P_API cp2p_log_level_t cp2p_log_get_level(void);
/** Parse "debug" etc.; returns -1 if unknown. */
CP2P_API int cp2p_log_parse_level(const char *s);
CP2P_API int cp2p_log_enabled(cp2p_log_level_t level);

#define CP2P_LOG_DEFAULT_BURST 5         /**< lines per format and window */
#define CP2P_LOG_DEFAULT_WINDOW_MS 10000
/** lines 0 or window_ms 0: no limit. Reports what was suppressed so far. */
CP2P_API void cp2p_log_set_rate_limit(unsigned lines, unsigned window_ms);
/** Write the suppressed-lines line of every format that has one now. */
CP2P_API void cp2p_log_flush(void);

/** Where lines go instead of stderr: fn(level, module, message, arg), the
 * message without the time and level that stderr's lines begin with (and
 * without a newline), valid during the call only. Calls are serialised
 * (one at a time, from whichever thread logged, often the loop's); fn must
 * not log through cp2p_log itself. NULL: back to stderr. Rate limiting
 * applies before the handler: it sees the suppressed-lines lines too. */
typedef void (*cp2p_log_handler_fn)(cp2p_log_level_t level, const char *module,
                                    const char *message, void *arg);
/** Install fn as the handler (see cp2p_log_handler_fn); NULL: stderr. */
CP2P_API void cp2p_log_set_handler(cp2p_log_handler_fn fn, void *arg);

/** Write one line at level from module (a printf format); the
 * cp2p_log_* macros check the level first. */
CP2P_API void cp2p_log_write(cp2p_log_level_t level, const char *module, const char *fmt, ...)
             __attribute__((format(printf, 3, 4)));
/** The same, with key telling apart lines of one format that are limited
 * apart (e.g. one per resource); cp2p_log_write's key is 0. */
CP2P_API void cp2p_log_write_key(cp2p_log_level_t level, const char *module, unsigned key,
                                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define CP2P_LOG_AT(lvl, mod, ...)                                                     \
    do {                                                                               \
        if (cp2p_log_enabled(lvl))                                                     \
            cp2p_log_write(lvl, mod, __VA_ARGS__);                                     \
    } while (0)
#define cp2p_log_error(mod, ...) CP2P_LOG_AT(CP2P_LOG_ERROR, mod, __VA_ARGS__)
#define cp2p_log_warn(mod, ...) CP2P_LOG_AT(CP2P_LOG_WARN, mod, __VA_ARGS__)
#define cp2p_log_info(mod, ...) CP2P_LOG_AT(CP2P_LOG_INFO, mod, __VA_ARGS__)
#define cp2p_log_debug(mod, ...) CP2P_LOG_AT(CP2P_LOG_DEBUG, mod, __VA_ARGS__)
#define cp2p_log_trace(mod, ...) CP2P_LOG_AT(CP2P_LOG_TRACE, mod, __VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif
