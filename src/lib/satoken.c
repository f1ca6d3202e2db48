/* Service-account tokens: RS256 JWS over Kubernetes' claims, with OpenSSL. */
#include "src/lib/satoken.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "src/lib/codec.h"

#define KID_LEN 43 /* base64url of 32 bytes, unpadded */
#define CLOCK_SKEW 60

struct satoken_key {
	EVP_PKEY *pkey;
	char kid[KID_LEN + 1];
};

/* ------------------------------------------------------------ base64 */

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static const char b64std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Encodes with @alphabet, padded when @pad. @out holds 4 * ceil(len/3) + 1. */
static size_t b64_encode(const unsigned char *in, size_t len, const char *alphabet, bool pad,
			 char *out)
{
	size_t i, o = 0;

	for (i = 0; i + 2 < len; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
		out[o++] = alphabet[v >> 18 & 63];
		out[o++] = alphabet[v >> 12 & 63];
		out[o++] = alphabet[v >> 6 & 63];
		out[o++] = alphabet[v & 63];
	}
	if (i < len) {
		unsigned v = (unsigned)in[i] << 16 | (i + 1 < len ? (unsigned)in[i + 1] << 8 : 0);
		out[o++] = alphabet[v >> 18 & 63];
		out[o++] = alphabet[v >> 12 & 63];
		if (i + 1 < len)
			out[o++] = alphabet[v >> 6 & 63];
		else if (pad)
			out[o++] = '=';
		if (pad)
			out[o++] = '=';
	}
	out[o] = '\0';
	return o;
}

static int b64_value(char c, bool url)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == (url ? '-' : '+'))
		return 62;
	if (c == (url ? '_' : '/'))
		return 63;
	return -1;
}

/* Decodes @len characters (base64url unpadded when @url, else standard
 * with optional padding) into @out (at least len * 3 / 4 + 1 bytes).
 * Returns the byte count or -EINVAL. Non-canonical trailing bits are
 * refused, so that one token has one spelling. */
static ssize_t b64_decode(const char *in, size_t len, bool url, unsigned char *out)
{
	size_t i, o = 0;
	unsigned acc = 0;
	int bits = 0;

	if (!url) {
		while (len > 0 && in[len - 1] == '=')
			len--;
	}
	if (len % 4 == 1)
		return -EINVAL;
	for (i = 0; i < len; i++) {
		int v = b64_value(in[i], url);
		if (v < 0)
			return -EINVAL;
		acc = (acc << 6 | (unsigned)v) & 0xffffff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
		}
	}
	if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
		return -EINVAL;
	return (ssize_t)o;
}

char *satoken_base64(const void *data, size_t len)
{
	char *out = malloc((len + 2) / 3 * 4 + 1);

	if (out != NULL)
		b64_encode(data, len, b64std, true, out);
	return out;
}

int satoken_unbase64(const char *s, size_t len, char **ret, size_t *ret_len)
{
	unsigned char *out = malloc(len / 4 * 3 + 4);
	ssize_t n;

	if (out == NULL)
		return -ENOMEM;
	n = b64_decode(s, len, false, out);
	if (n < 0) {
		free(out);
		return -EINVAL;
	}
	out[n] = '\0';
	*ret = (char *)out;
	*ret_len = (size_t)n;
	return 0;
}

/* ------------------------------------------------------------ keys */

int satoken_key_generate(char **ret_pem, size_t *ret_len)
{
	EVP_PKEY *pkey;
	BIO *bio = NULL;
	BUF_MEM *mem;
	char *pem;
	int rv = -EIO;

	pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	if (pkey == NULL)
		return -EIO;
	bio = BIO_new(BIO_s_mem());
	if (bio == NULL || !PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL))
		goto out;
	BIO_get_mem_ptr(bio, &mem);
	pem = malloc(mem->length + 1);
	if (pem == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	memcpy(pem, mem->data, mem->length);
	pem[mem->length] = '\0';
	*ret_pem = pem;
	*ret_len = mem->length;
	rv = 0;
out:
	if (bio != NULL) {
		BIO_get_mem_ptr(bio, &mem);
		OPENSSL_cleanse(mem->data, mem->length);
		BIO_free(bio);
	}
	EVP_PKEY_free(pkey);
	return rv;
}

int satoken_key_load(const void *pem, size_t len, struct satoken_key **ret_key)
{
	struct satoken_key *k;
	unsigned char *der = NULL;
	unsigned char digest[32];
	unsigned int dlen = 0;
	BIO *bio;
	int n, rv = -EINVAL;

	if (len > INT32_MAX)
		return -EINVAL;
	k = calloc(1, sizeof(*k));
	if (k == NULL)
		return -ENOMEM;
	bio = BIO_new_mem_buf(pem, (int)len);
	if (bio == NULL) {
		rv = -ENOMEM;
		goto err;
	}
	k->pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (k->pkey == NULL || EVP_PKEY_get_base_id(k->pkey) != EVP_PKEY_RSA ||
	    EVP_PKEY_get_bits(k->pkey) < 2048)
		goto err;
	n = i2d_PUBKEY(k->pkey, &der);
	if (n <= 0)
		goto err;
	if (!EVP_Digest(der, (size_t)n, digest, &dlen, EVP_sha256(), NULL) || dlen != 32) {
		OPENSSL_free(der);
		goto err;
	}
	OPENSSL_free(der);
	b64_encode(digest, sizeof(digest), b64url, false, k->kid);
	*ret_key = k;
	return 0;
err:
	satoken_key_free(k);
	return rv;
}

void satoken_key_free(struct satoken_key *k)
{
	if (k == NULL)
		return;
	EVP_PKEY_free(k->pkey);
	free(k);
}

const char *satoken_key_id(const struct satoken_key *k)
{
	return k->kid;
}

/* ------------------------------------------------------------ JWS */

static char *b64url_json(const json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT);
	char *out;
	size_t n;

	if (s == NULL)
		return NULL;
	n = strlen(s);
	out = malloc((n + 2) / 3 * 4 + 1);
	if (out != NULL)
		b64_encode((unsigned char *)s, n, b64url, false, out);
	free(s);
	return out;
}

int satoken_sign(const struct satoken_key *k, const json_t *claims, char **ret_token)
{
	json_t *hdr;
	char *h = NULL, *p = NULL, *tok = NULL;
	unsigned char *sig = NULL;
	size_t siglen = 0, hl, pl;
	EVP_MD_CTX *md = NULL;
	int rv = -ENOMEM;

	if (!json_is_object(claims))
		return -EINVAL;
	hdr = json_pack("{s:s, s:s}", "alg", "RS256", "kid", k->kid);
	if (hdr == NULL)
		return -ENOMEM;
	h = b64url_json(hdr);
	json_decref(hdr);
	p = b64url_json(claims);
	if (h == NULL || p == NULL)
		goto out;
	hl = strlen(h);
	pl = strlen(p);
	tok = malloc(hl + 1 + pl + 1 + 4 * (size_t)(EVP_PKEY_get_size(k->pkey) + 2) / 3 + 1);
	if (tok == NULL)
		goto out;
	memcpy(tok, h, hl);
	tok[hl] = '.';
	memcpy(tok + hl + 1, p, pl);
	rv = -EIO;
	md = EVP_MD_CTX_new();
	if (md == NULL || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k->pkey) != 1 ||
	    EVP_DigestSign(md, NULL, &siglen, (unsigned char *)tok, hl + 1 + pl) != 1)
		goto out;
	sig = malloc(siglen);
	if (sig == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	if (EVP_DigestSign(md, sig, &siglen, (unsigned char *)tok, hl + 1 + pl) != 1)
		goto out;
	tok[hl + 1 + pl] = '.';
	b64_encode(sig, siglen, b64url, false, tok + hl + 1 + pl + 1);
	*ret_token = tok;
	tok = NULL;
	rv = 0;
out:
	EVP_MD_CTX_free(md);
	free(sig);
	free(tok);
	free(h);
	free(p);
	return rv;
}

bool satoken_looks_like_jwt(const char *token, size_t len)
{
	size_t i, dots = 0;

	if (len < 8 || len > SATOKEN_MAX_LEN || memcmp(token, "eyJ", 3) != 0)
		return false;
	for (i = 0; i < len; i++) {
		if (token[i] == '.') {
			dots++;
			continue;
		}
		if (b64_value(token[i], true) < 0)
			return false;
	}
	return dots == 2;
}

/* Decodes a base64url part holding a JSON object. */
static json_t *decode_part(const char *s, size_t len)
{
	unsigned char *buf = malloc(len * 3 / 4 + 1);
	json_t *v = NULL;
	ssize_t n;

	if (buf == NULL)
		return NULL;
	n = b64_decode(s, len, true, buf);
	if (n > 0)
		v = json_loadb((char *)buf, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
	free(buf);
	if (v != NULL && !json_is_object(v)) {
		json_decref(v);
		v = NULL;
	}
	return v;
}

int satoken_verify(const struct satoken_key *k, const char *token, size_t len,
		   json_t **ret_claims)
{
	const char *d1, *d2, *kid;
	json_t *hdr = NULL, *claims = NULL;
	unsigned char *sig = NULL;
	ssize_t siglen;
	EVP_MD_CTX *md = NULL;
	int rv = -EACCES;

	if (!satoken_looks_like_jwt(token, len))
		return -EACCES;
	d1 = memchr(token, '.', len);
	d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token));
	hdr = decode_part(token, (size_t)(d1 - token));
	if (hdr == NULL)
		goto out;
	/* Only our algorithm: "none" and HS256-with-the-public-key are the
	 * classic JWT forgeries. */
	if (json_string_value(json_object_get(hdr, "alg")) == NULL ||
	    strcmp(json_string_value(json_object_get(hdr, "alg")), "RS256") != 0)
		goto out;
	if (json_object_get(hdr, "crit") != NULL)
		goto out;
	kid = json_string_value(json_object_get(hdr, "kid"));
	if (json_object_get(hdr, "kid") != NULL && (kid == NULL || strcmp(kid, k->kid) != 0))
		goto out;
	sig = malloc((len - (size_t)(d2 + 1 - token)) * 3 / 4 + 1);
	if (sig == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	siglen = b64_decode(d2 + 1, len - (size_t)(d2 + 1 - token), true, sig);
	if (siglen <= 0 || siglen != EVP_PKEY_get_size(k->pkey))
		goto out;
	md = EVP_MD_CTX_new();
	if (md == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	if (EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k->pkey) != 1 ||
	    EVP_DigestVerify(md, sig, (size_t)siglen, (const unsigned char *)token,
			     (size_t)(d2 - token)) != 1)
		goto out;
	claims = decode_part(d1 + 1, (size_t)(d2 - d1 - 1));
	if (claims == NULL)
		goto out;
	*ret_claims = claims;
	rv = 0;
out:
	EVP_MD_CTX_free(md);
	free(sig);
	json_decref(hdr);
	return rv;
}

/* ------------------------------------------------------------ claims */

json_t *satoken_legacy_claims(const char *ns, const char *sa_name, const char *sa_uid,
			      const char *secret_name)
{
	char sub[512];

	snprintf(sub, sizeof(sub), SATOKEN_USER_PREFIX "%s:%s", ns, sa_name);
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "iss", SATOKEN_LEGACY_ISSUER,
			 "kubernetes.io/serviceaccount/namespace", ns,
			 "kubernetes.io/serviceaccount/secret.name", secret_name,
			 "kubernetes.io/serviceaccount/service-account.name", sa_name,
			 "kubernetes.io/serviceaccount/service-account.uid", sa_uid, "sub", sub);
}

json_t *satoken_bound_claims(const char *ns, const char *sa_name, const char *sa_uid,
			     int64_t now, int64_t expiry, const char *const *audiences,
			     const char *jti, const struct satoken_binding *binding)
{
	json_t *c, *aud, *kio;
	char sub[512];
	size_t i;

	snprintf(sub, sizeof(sub), SATOKEN_USER_PREFIX "%s:%s", ns, sa_name);
	aud = json_array();
	if (aud == NULL)
		return NULL;
	if (audiences == NULL)
		json_array_append_new(aud, json_string(SATOKEN_ISSUER));
	else
		for (i = 0; audiences[i] != NULL; i++)
			json_array_append_new(aud, json_string(audiences[i]));
	kio = json_pack("{s:s, s:{s:s, s:s}}", "namespace", ns, "serviceaccount", "name", sa_name,
			"uid", sa_uid);
	if (kio != NULL && binding != NULL && binding->kind != NULL)
		json_object_set_new(kio, strcmp(binding->kind, "Pod") == 0 ? "pod" : "secret",
				    json_pack("{s:s, s:s}", "name", binding->name, "uid",
					      binding->uid));
	c = json_pack("{s:o, s:I, s:I, s:s, s:s, s:o*, s:I, s:s}", "aud", aud, "exp",
		      (json_int_t)(now + expiry), "iat", (json_int_t)now, "iss", SATOKEN_ISSUER,
		      "jti", jti, "kubernetes.io", kio, "nbf", (json_int_t)now, "sub", sub);
	return c;
}

static const char *claim_str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s != NULL && s[0] != '\0' ? s : NULL;
}

static bool sub_matches(const char *sub, const char *ns, const char *name)
{
	size_t pl = strlen(SATOKEN_USER_PREFIX), nl = strlen(ns);

	return strncmp(sub, SATOKEN_USER_PREFIX, pl) == 0 && strncmp(sub + pl, ns, nl) == 0 &&
	       sub[pl + nl] == ':' && strcmp(sub + pl + nl + 1, name) == 0;
}

static bool aud_ok(const json_t *aud)
{
	size_t i;

	if (json_is_string(aud))
		return strcmp(json_string_value(aud), SATOKEN_ISSUER) == 0;
	for (i = 0; i < json_array_size(aud); i++) {
		const char *a = json_string_value(json_array_get(aud, i));
		if (a != NULL && strcmp(a, SATOKEN_ISSUER) == 0)
			return true;
	}
	return false;
}

int satoken_claims_parse(const json_t *claims, int64_t now, struct satoken_info *ret_info)
{
	struct satoken_info in = {0};
	const char *iss = claim_str(claims, "iss"), *sub = claim_str(claims, "sub");
	const json_t *kio, *sa, *pod, *sec, *exp, *nbf;

	if (iss == NULL || sub == NULL)
		return -EACCES;
	if (strcmp(iss, SATOKEN_LEGACY_ISSUER) == 0) {
		in.legacy = true;
		in.ns = claim_str(claims, "kubernetes.io/serviceaccount/namespace");
		in.sa_name = claim_str(claims, "kubernetes.io/serviceaccount/service-account.name");
		in.sa_uid = claim_str(claims, "kubernetes.io/serviceaccount/service-account.uid");
		in.secret_name = claim_str(claims, "kubernetes.io/serviceaccount/secret.name");
		if (in.secret_name == NULL)
			return -EACCES;
	} else if (strcmp(iss, SATOKEN_ISSUER) == 0) {
		kio = json_object_get(claims, "kubernetes.io");
		sa = json_object_get(kio, "serviceaccount");
		in.ns = claim_str(kio, "namespace");
		in.sa_name = claim_str(sa, "name");
		in.sa_uid = claim_str(sa, "uid");
		pod = json_object_get(kio, "pod");
		sec = json_object_get(kio, "secret");
		if (pod != NULL) {
			in.pod_name = claim_str(pod, "name");
			in.pod_uid = claim_str(pod, "uid");
			if (in.pod_name == NULL || in.pod_uid == NULL)
				return -EACCES;
		}
		if (sec != NULL) {
			in.secret_name = claim_str(sec, "name");
			in.secret_uid = claim_str(sec, "uid");
			if (in.secret_name == NULL || in.secret_uid == NULL)
				return -EACCES;
		}
		in.jti = claim_str(claims, "jti");
		exp = json_object_get(claims, "exp");
		nbf = json_object_get(claims, "nbf");
		if (!json_is_integer(exp) || now >= json_integer_value(exp))
			return -EACCES;
		in.exp = json_integer_value(exp);
		if (nbf != NULL && (!json_is_integer(nbf) || now + CLOCK_SKEW < json_integer_value(nbf)))
			return -EACCES;
		if (!aud_ok(json_object_get(claims, "aud")))
			return -EACCES;
	} else {
		return -EACCES;
	}
	if (in.ns == NULL || in.sa_name == NULL || in.sa_uid == NULL ||
	    !sub_matches(sub, in.ns, in.sa_name))
		return -EACCES;
	*ret_info = in;
	return 0;
}

/* ------------------------------------------------------------ objects */

/* The stored object at /registry/<plural>/<ns>/<name>, when present, not
 * being deleted, and (if @uid) with that uid. */
static bool object_ok(satoken_get_fn get, void *data, const char *plural, const char *ns,
		      const char *name, const char *uid, const void **ret_val, size_t *ret_len)
{
	char key[600];
	const void *val, *dt;
	const char *s;
	size_t len, n;
	int w;

	w = snprintf(key, sizeof(key), "/registry/%s/%s/%s", plural, ns, name);
	if (w < 0 || (size_t)w >= sizeof(key) || strchr(ns, '/') != NULL ||
	    strchr(name, '/') != NULL)
		return false;
	if (get(data, key, &val, &len) != 0)
		return false;
	if (codec_msgpack_get(val, len, "metadata.deletionTimestamp", &dt, &n) != -ENOENT)
		return false;
	if (uid != NULL && (codec_msgpack_get_str(val, len, "metadata.uid", &s, &n) != 0 ||
			    n != strlen(uid) || memcmp(s, uid, n) != 0))
		return false;
	*ret_val = val;
	*ret_len = len;
	return true;
}

static bool mp_str_is(const void *mp, size_t len, const char *path, const char *want)
{
	const char *s;
	size_t n;

	return codec_msgpack_get_str(mp, len, path, &s, &n) == 0 && n == strlen(want) &&
	       memcmp(s, want, n) == 0;
}

/* Whether annotation @key (which holds dots) of the object is @want. */
static bool annotation_is(const void *mp, size_t len, const char *key, const char *want)
{
	const void *ann, *v;
	size_t alen, vlen;

	return codec_msgpack_get(mp, len, "metadata.annotations", &ann, &alen) == 0 &&
	       codec_msgpack_map_get(ann, alen, key, strlen(key), &v, &vlen) == 0 &&
	       mp_str_is(v, vlen, "", want);
}

/* Whether data.token of the stored Secret is @token. The stored form keeps
 * JSON's base64 strings (a bin value is taken as raw bytes). */
static bool secret_token_is(const void *secret, size_t len, const char *token, size_t tlen)
{
	const void *data, *v;
	const char *s;
	size_t dlen, vlen, slen;
	unsigned char *buf;
	ssize_t n;
	bool ok;

	if (codec_msgpack_get(secret, len, "data", &data, &dlen) != 0 ||
	    codec_msgpack_map_get(data, dlen, "token", 5, &v, &vlen) != 0 || vlen == 0)
		return false;
	if (codec_msgpack_str(v, vlen, &s, &slen) != 0) {
		const unsigned char *p = v;
		size_t hdr = p[0] == 0xc4 ? 2 : p[0] == 0xc5 ? 3 : 0;
		return hdr != 0 && vlen - hdr == tlen &&
		       CRYPTO_memcmp(p + hdr, token, tlen) == 0;
	}
	if (slen > 4 * SATOKEN_MAX_LEN)
		return false;
	buf = malloc(slen * 3 / 4 + 1);
	if (buf == NULL)
		return false;
	n = b64_decode(s, slen, false, buf);
	ok = n >= 0 && (size_t)n == tlen && CRYPTO_memcmp(buf, token, tlen) == 0;
	free(buf);
	return ok;
}

int satoken_check(const json_t *claims, const char *token, size_t len, int64_t now,
		  satoken_get_fn get, void *data, struct satoken_info *ret_info)
{
	struct satoken_info in;
	const void *val;
	size_t vlen;

	if (satoken_claims_parse(claims, now, &in) != 0)
		return -EACCES;
	if (!object_ok(get, data, "serviceaccounts", in.ns, in.sa_name, in.sa_uid, &val, &vlen))
		return -EACCES;
	if (in.legacy) {
		/* Kubernetes: the Secret must still exist and hold this
		 * token; deleting the Secret revokes the token. */
		if (!object_ok(get, data, "secrets", in.ns, in.secret_name, NULL, &val, &vlen) ||
		    !mp_str_is(val, vlen, "type", SATOKEN_SECRET_TYPE) ||
		    !annotation_is(val, vlen, SATOKEN_ANN_SA_NAME, in.sa_name) ||
		    !secret_token_is(val, vlen, token, len))
			return -EACCES;
	} else {
		if (in.pod_name != NULL &&
		    !object_ok(get, data, "pods", in.ns, in.pod_name, in.pod_uid, &val, &vlen))
			return -EACCES;
		if (in.secret_uid != NULL && !object_ok(get, data, "secrets", in.ns,
							in.secret_name, in.secret_uid, &val, &vlen))
			return -EACCES;
	}
	*ret_info = in;
	return 0;
}
