/** @file
 * Private networks (libp2p specs pnet/Private-Networks-PSK-V1.md): hosts that
 * share a 32-byte pre-shared key encrypt every byte of every connection with
 * XSalsa20 under it, below the security handshake, so a peer without the key
 * cannot even negotiate a protocol. It hides who talks; it authenticates
 * nothing (Noise or TLS above it still do). Give the key to a host through
 * cp2p_host_config_t.psk. */
#ifndef CP2P_PNET_H
#define CP2P_PNET_H

#include "cp2p/export.h"

#include <stddef.h>
#include <stdint.h>

#include "cp2p/buf.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CP2P_PNET_KEY_SIZE 32
/** The largest key file cp2p_pnet_key_load reads. */
#define CP2P_PNET_KEY_FILE_MAX 4096

/** The key file format go-libp2p and js-libp2p use (`swarm.key`): the line
 * `/key/swarm/psk/1.0.0/`, an encoding line (`/base16/`, `/base64/` or
 * `/bin/`), then the 32 key bytes in that encoding (lines end in LF or CRLF;
 * what follows the key is ignored, as go-libp2p does). CP2P_EPARSE on
 * anything else. */
CP2P_API int cp2p_pnet_key_parse(const uint8_t *text, size_t len, uint8_t key[CP2P_PNET_KEY_SIZE]);
/** cp2p_pnet_key_parse on a file's contents; CP2P_EIO if it cannot be read,
 * CP2P_EOVERFLOW if larger than CP2P_PNET_KEY_FILE_MAX. */
CP2P_API int cp2p_pnet_key_load(const char *path, uint8_t key[CP2P_PNET_KEY_SIZE]);
/** A fresh random key in the file format (`/base16/`), appended to out. */
CP2P_API int cp2p_pnet_key_generate(cp2p_buf_t *out);

#ifdef __cplusplus
}
#endif

#endif
