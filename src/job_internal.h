/* job_internal.h -- what the job*.c files share with each other and with
 * nobody else (the job codec's public face is include/hookd/job.h). Each
 * section is one file's exports. */
#ifndef HOOKD_JOB_INTERNAL_H
#define HOOKD_JOB_INTERNAL_H

#include <msgpack.h>
#include <stddef.h>

#include "hookd/buf.h"
#include "hookd/err.h"
#include "hookd/json.h"

/* ---- job.c: decoding ---------------------------------------------------- */

/* Whether data starts like a msgpack map (0x80-0x8f, 0xde, 0xdf: bytes
 * no JSON text starts with), so is to be read as msgpack, not JSON. */
int job_is_msgpack(const char *data, size_t len);

/* ---- job_mpcheck.c: msgpack bytes checked before msgpack-c sees them ---- */

/* The size of the msgpack value at p (at most len bytes), or -1 when it is
 * malformed, truncated, declares more elements than the bytes left can
 * hold, or nests deeper than max_depth (depth is the caller's level; pass
 * 0). Linear in len; allocates nothing. */
long job_mp_check(const unsigned char *p, size_t len, int depth, int max_depth);

/* ---- job_mpjson.c: msgpack-c objects as json_value trees --------------- */

/* The map key k as m's key, copied into doc: a UTF-8 string as it is, an
 * integer as its JSON number text. Returns 0, or HK_EINVAL (invalid_utf8,
 * invalid_type) with err set. m->value is left alone. */
int job_mp_key(struct json_doc *doc, const msgpack_object *k, struct json_member *m,
               struct hk_err *err);

/* o as a new json_value in doc (*out, owned by doc), o itself at nesting
 * level depth. Returns 0, or HK_EINVAL with err set: too_deep past
 * max_depth, invalid_utf8, invalid_type (a bin or ext value, or a map key
 * job_mp_key refuses). */
int job_mp_to_json(struct json_doc *doc, const msgpack_object *o, int depth, int max_depth,
                   struct json_value **out, struct hk_err *err);

/* ---- job_validate.c: a webhook job's fields and their rules ------------ */

struct job;

/* The known fields of a job, borrowed from a json_doc. */
struct job_fields {
    const struct json_value *id, *url, *payload, *body, *body_base64, *event, *headers,
        *content_type, *secret, *secret_previous, *secret_previous_until, *timeout_ms,
        *max_attempts, *type, *rate_limit;
    const char *body_bin;       /* msgpack bin body, borrowed */
    size_t body_bin_len;
    int has_body_bin;
};

/* If key (klen bytes) names one of the fields, point that field at v
 * (borrowed); otherwise nothing. A later key wins, as in JSON. */
void job_fields_take(struct job_fields *f, const char *key, size_t klen,
                     const struct json_value *v);

/* Check v as a job id (a string of 1..JOB_ID_MAX bytes, no control
 * characters) and copy it to job->id. Returns 0, or HK_EINVAL (invalid_type,
 * invalid_utf8, invalid_id) with err set and job->id untouched. */
int job_validate_id(struct job *job, const struct json_value *v, struct hk_err *err);

/* Check a webhook job's fields and fill job from them (its strings owned by
 * job). Returns 0, or HK_EINVAL with err->code one of job_decode's reason
 * codes; job may then hold what was filled before the failing field. */
int job_validate(struct job *job, const struct job_fields *f, struct hk_err *err);

/* ---- job_envelope.c: the retry envelope; msgpack packing helpers ------- */

/* Start packing msgpack onto the end of out. */
void job_packer_init(msgpack_packer *pk, struct buf *out);

/* Pack the NUL-terminated s as a msgpack str. */
void job_pack_str(msgpack_packer *pk, const char *s);

/* Whether data starts like a retry envelope (a map whose first key is
 * "_hookd"); no producer's job does. */
int job_envelope_is(const char *data, size_t len);

/* Read the retry envelope in data: its attempts, first_ms, last_status and
 * last_error into job. Returns 0 with *inner the producer's job bytes
 * (inner_len long, NUL-terminated) and *id the envelope's id or NULL, both
 * new and owned by the caller; or HK_EINVAL (invalid_envelope) with err set
 * and *inner, *id NULL. An envelope holding an envelope is refused. */
int job_envelope_open(const char *data, size_t len, struct job *job, char **inner,
                      size_t *inner_len, char **id, struct hk_err *err);

#endif
