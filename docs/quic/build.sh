#!/bin/sh
# Builds the spike against the installed Debian packages and cp2p's static library (read-only).
set -e
CP2P=$(cd "$(dirname "$0")/../.." && pwd)
cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -g -O1 -I$CP2P/include -o spike spike.c \
  $CP2P/build/libcp2p.a \
  $(pkg-config --cflags --libs libngtcp2 libngtcp2_crypto_gnutls gnutls libuv libsodium libprotobuf-c lmdb) \
  -lssl -lcrypto -lm
