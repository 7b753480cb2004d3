/* DNS messages (RFC 1035 section 4, with the mDNS bits of RFC 6762 section 18):
 * a sans-I/O codec. Decoding accepts name compression and any record type,
 * validates every length against the packet and bounds every count; encoding
 * writes uncompressed names, which keeps it simple and is always valid. */
#ifndef CP2P_DISCOVERY_DNS_H
#define CP2P_DISCOVERY_DNS_H

#include <stddef.h>
#include <stdint.h>

#include "cp2p/buf.h"

#define CP2P_DNS_NAME_MAX 255   /* wire form, terminating zero included (RFC 1035 2.3.4) */
#define CP2P_DNS_LABEL_MAX 63
#define CP2P_DNS_MAX_ENTRIES 128 /* questions and records of one message together */
#define CP2P_DNS_HEADER_LEN 12

#define CP2P_DNS_TYPE_A 1
#define CP2P_DNS_TYPE_PTR 12
#define CP2P_DNS_TYPE_TXT 16
#define CP2P_DNS_TYPE_AAAA 28
#define CP2P_DNS_TYPE_SRV 33
#define CP2P_DNS_TYPE_ANY 255
#define CP2P_DNS_CLASS_IN 1
#define CP2P_DNS_CLASS_ANY 255

#define CP2P_DNS_FLAG_QR 0x8000
#define CP2P_DNS_FLAG_AA 0x0400
#define CP2P_DNS_OPCODE(flags) (((flags) >> 11) & 0xf)
#define CP2P_DNS_RCODE(flags) ((flags) & 0xf)

/* A name in uncompressed wire form: length-prefixed labels, then a zero. */
typedef struct cp2p_dns_name {
    uint8_t len;
    uint8_t wire[CP2P_DNS_NAME_MAX];
} cp2p_dns_name_t;

typedef struct cp2p_dns_question {
    cp2p_dns_name_t name;
    uint16_t type;
    uint16_t cls;         /* without the unicast-response bit */
    int unicast_response; /* the QU bit of RFC 6762 5.4 */
} cp2p_dns_question_t;

typedef struct cp2p_dns_rr {
    cp2p_dns_name_t name;
    uint16_t type;
    uint16_t cls;        /* without the cache-flush bit */
    int cache_flush;     /* RFC 6762 10.2 */
    uint32_t ttl;
    const uint8_t *rdata; /* into the decoded packet */
    uint16_t rdlen;
    cp2p_dns_name_t target; /* PTR and SRV only, decompressed */
    uint16_t priority, weight, port; /* SRV only */
} cp2p_dns_rr_t;

typedef struct cp2p_dns_msg {
    uint16_t id;
    uint16_t flags;
    size_t nq, nan, nns, nar;
    cp2p_dns_question_t *q;
    cp2p_dns_rr_t *rr; /* nan answers, then nns authority, then nar additional records */
} cp2p_dns_msg_t;

/* "_p2p._udp.local" (a trailing dot is allowed) into wire form. Labels of
 * 1..63 bytes; CP2P_EINVAL for empty labels or a name too long. */
int cp2p_dns_name_from_text(const char *s, cp2p_dns_name_t *out);
/* Dotted text + NUL. Bytes other than letters, digits, '-' and '_' are
 * written as \DDD so that the text names exactly one wire name. */
int cp2p_dns_name_to_text(const cp2p_dns_name_t *n, char *out, size_t cap);
/* 1 if equal ignoring ASCII case (RFC 1035 2.3.3), else 0. */
int cp2p_dns_name_equal(const cp2p_dns_name_t *a, const cp2p_dns_name_t *b);
/* 1 if n is exactly one label under parent; *label and *len then give it. */
int cp2p_dns_name_child_label(const cp2p_dns_name_t *n, const cp2p_dns_name_t *parent,
                              const uint8_t **label, size_t *len);
/* out = label + "." + parent. */
int cp2p_dns_name_prepend(const char *label, size_t len, const cp2p_dns_name_t *parent,
                          cp2p_dns_name_t *out);

/* Decode a whole message. On success *out holds malloc'd arrays (free with
 * cp2p_dns_msg_free) whose rdata point into p, which must outlive them.
 * Errors: CP2P_ETRUNC (a length runs past the end), CP2P_EPARSE (bad label,
 * pointer that does not point backwards, bad rdata for A/AAAA/PTR/SRV/TXT),
 * CP2P_EOVERFLOW (name too long, more than CP2P_DNS_MAX_ENTRIES
 * entries), CP2P_ENOMEM. Bytes after the counted entries are ignored. On error
 * *out is empty. */
int cp2p_dns_decode(const uint8_t *p, size_t n, cp2p_dns_msg_t *out);
void cp2p_dns_msg_free(cp2p_dns_msg_t *m);

/* Walk the character-strings of a TXT record (validated by the decoder):
 * 1 and the next string while there is one, then 0. Start with *off = 0. */
int cp2p_dns_txt_next(const cp2p_dns_rr_t *rr, size_t *off, const uint8_t **s, size_t *len);

/* Encoding, appended to out. A message is a header followed by exactly the
 * counted questions and records; the caller keeps the counts right. */
int cp2p_dns_put_header(cp2p_buf_t *out, uint16_t id, uint16_t flags, uint16_t nq, uint16_t nan,
                        uint16_t nns, uint16_t nar);
int cp2p_dns_put_question(cp2p_buf_t *out, const cp2p_dns_name_t *name, uint16_t type,
                          uint16_t cls);
int cp2p_dns_put_ptr(cp2p_buf_t *out, const cp2p_dns_name_t *name, uint32_t ttl,
                     const cp2p_dns_name_t *target);
/* One TXT record with n character-strings (each at most 255 bytes). */
int cp2p_dns_put_txt(cp2p_buf_t *out, const cp2p_dns_name_t *name, uint32_t ttl,
                     const char *const *strs, size_t n);
int cp2p_dns_put_srv(cp2p_buf_t *out, const cp2p_dns_name_t *name, uint32_t ttl, uint16_t port,
                     const cp2p_dns_name_t *target);
int cp2p_dns_put_a(cp2p_buf_t *out, const cp2p_dns_name_t *name, uint32_t ttl,
                   const uint8_t ip[4]);
int cp2p_dns_put_aaaa(cp2p_buf_t *out, const cp2p_dns_name_t *name, uint32_t ttl,
                      const uint8_t ip[16]);

#endif
