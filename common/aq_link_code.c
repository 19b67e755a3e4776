/* aq_link_code.c — Telegram link codes (see aq_link_code.h). */
#include "aq_link_code.h"
#include <sodium.h>

const char aq_link_code_insert_sql[] =
    "INSERT INTO link_codes (code, user_id, expires_at)"
    " VALUES ($1, $2, now() + make_interval(mins => $3::int))"
    " RETURNING json_build_object('code', code, 'expires_at', expires_at, 'start', '/start ' || code)::text";

void aq_link_code_new(char *out)
{
    static const char alphabet[] = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    for (int i = 0; i < AQ_LINK_CODE_LEN; i++) out[i] = alphabet[randombytes_uniform(sizeof alphabet - 1)];
    out[AQ_LINK_CODE_LEN] = '\0';
}
