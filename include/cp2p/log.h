/* Levelled logging to stderr. The level comes from CP2P_LOG
 * (error, warn, info, debug, trace; default warn) or cp2p_log_set_level(). */
#ifndef CP2P_LOG_H
#define CP2P_LOG_H

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

void cp2p_log_set_level(cp2p_log_level_t level);
cp2p_log_level_t cp2p_log_get_level(void);
/* Parse "debug" etc.; returns -1 if unknown. */
int cp2p_log_parse_level(const char *s);
int cp2p_log_enabled(cp2p_log_level_t level);
void cp2p_log_write(cp2p_log_level_t level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

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
