/* TLS over memory BIOs (OpenSSL 3) for /wss: the socket's bytes go into one
 * BIO, what TLS wants sent comes out of the other. */
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "cp2p/error.h"
#include "cp2p/log.h"
#include "transport/tls_pipe.h"

struct cp2p_tls_pipe {
    SSL *ssl;
    BIO *in, *out; /* the socket's side: in is written, out is read */
};

static void log_ssl(const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    cp2p_log_warn("wss", "%s: %s", what, e ? buf : "unknown error");
    ERR_clear_error();
}

cp2p_tls_ctx_t *cp2p_tls_server_ctx(const char *cert_file, const char *key_file)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        log_ssl(cert_file);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        log_ssl(key_file);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

cp2p_tls_ctx_t *cp2p_tls_client_ctx(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        log_ssl("the system's certificate roots");
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

void cp2p_tls_ctx_free(cp2p_tls_ctx_t *ctx)
{
    SSL_CTX_free(ctx);
}

cp2p_tls_pipe_t *cp2p_tls_pipe_new(cp2p_tls_ctx_t *ctx, const char *name)
{
    cp2p_tls_pipe_t *t = calloc(1, sizeof *t);
    if (!t || !(t->ssl = SSL_new(ctx)) || !(t->in = BIO_new(BIO_s_mem())) ||
        !(t->out = BIO_new(BIO_s_mem()))) {
        if (t) {
            BIO_free(t->in);
            SSL_free(t->ssl);
        }
        free(t);
        return NULL;
    }
    BIO_set_mem_eof_return(t->in, -1); /* empty is "more to come", not EOF */
    SSL_set_bio(t->ssl, t->in, t->out);
    if (name) {
        SSL_set_connect_state(t->ssl);
        X509_VERIFY_PARAM *vp = SSL_get0_param(t->ssl);
        int ok = X509_VERIFY_PARAM_set1_ip_asc(vp, name) == 1; /* an address */
        if (!ok) { /* a name: SNI, and the certificate must carry it */
            SSL_set_tlsext_host_name(t->ssl, name);
            ok = X509_VERIFY_PARAM_set1_host(vp, name, 0) == 1;
        }
        if (!ok) {
            cp2p_tls_pipe_free(t);
            return NULL;
        }
    } else {
        SSL_set_accept_state(t->ssl);
    }
    return t;
}

void cp2p_tls_pipe_free(cp2p_tls_pipe_t *t)
{
    if (!t)
        return;
    SSL_free(t->ssl); /* and its BIOs */
    free(t);
}

int cp2p_tls_pipe_feed(cp2p_tls_pipe_t *t, const uint8_t *p, size_t n)
{
    if (n && BIO_write(t->in, p, (int)n) != (int)n)
        return CP2P_ENOMEM;
    return 0;
}

int cp2p_tls_pipe_handshake(cp2p_tls_pipe_t *t)
{
    int r = SSL_do_handshake(t->ssl);
    if (r == 1)
        return 1;
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    long v = SSL_get_verify_result(t->ssl);
    if (v != X509_V_OK)
        cp2p_log_warn("wss", "the server's certificate: %s", X509_verify_cert_error_string(v));
    else
        log_ssl("TLS handshake");
    return v != X509_V_OK ? CP2P_ECRYPTO : CP2P_EPROTO;
}

ssize_t cp2p_tls_pipe_read(cp2p_tls_pipe_t *t, uint8_t *out, size_t cap, int *closed)
{
    size_t got = 0;
    while (got < cap) {
        size_t n = 0;
        int r = SSL_read_ex(t->ssl, out + got, cap - got, &n);
        if (r == 1) {
            got += n;
            continue;
        }
        int e = SSL_get_error(t->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            break;
        if (e == SSL_ERROR_ZERO_RETURN) {
            *closed = 1;
            break;
        }
        log_ssl("TLS record");
        return CP2P_EPROTO;
    }
    return (ssize_t)got;
}

int cp2p_tls_pipe_write(cp2p_tls_pipe_t *t, const uint8_t *p, size_t n)
{
    size_t done = 0;
    if (n && (SSL_write_ex(t->ssl, p, n, &done) != 1 || done != n)) {
        log_ssl("TLS write");
        return CP2P_EIO;
    }
    return 0;
}

void cp2p_tls_pipe_shutdown(cp2p_tls_pipe_t *t)
{
    SSL_shutdown(t->ssl);
    ERR_clear_error();
}

int cp2p_tls_pipe_output(cp2p_tls_pipe_t *t, cp2p_buf_t *out)
{
    char *p;
    long n = BIO_get_mem_data(t->out, &p);
    if (n <= 0)
        return 0;
    int rc = cp2p_buf_append(out, p, (size_t)n);
    (void)BIO_reset(t->out);
    return rc;
}
