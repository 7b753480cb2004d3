/** @file
 * CP2P_API marks the library's public functions: the shared library is
 * built with hidden visibility, so only what the headers in include/cp2p/
 * declare with it is exported (not the internal modules, not the protobuf-c
 * code generated from proto/). */
#ifndef CP2P_EXPORT_H
#define CP2P_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#define CP2P_API __attribute__((visibility("default")))
#else
#define CP2P_API
#endif

#endif
