/* tests/core/test_err.c - error state, context, trace and exit-status mapping. */
#include <criterion/criterion.h>
#include <string.h>

#include "core/err.h"

static int inner(void) { return ERR(ERR_FORMAT, "bad magic 0x%08x in %s", 0xdeadbeefu, "x.bin"); }
static int outer(void)
{
    TRY(inner());
    return ERR_OK;
}

Test(err, set_trace_context)
{
    err_clear();
    cr_assert_eq(outer(), ERR_FORMAT);
    cr_assert_eq(err_code(), ERR_FORMAT);
    cr_assert_str_eq(err_message(), "bad magic 0xdeadbeef in x.bin");
    cr_assert_eq(err_trace_len(), 1);
    cr_assert(strstr(err_trace_at(0), "inner()") != NULL);
    err_context("loading checkpoint");
    cr_assert_str_eq(err_message(), "loading checkpoint: bad magic 0xdeadbeef in x.bin");
    err_hint("re-run dfm fetch");
    cr_assert_str_eq(err_hint_text(), "re-run dfm fetch");
    err_clear();
    cr_assert_eq(err_code(), ERR_OK);
    cr_assert_str_eq(err_message(), "");
}

Test(err, exit_status)
{
    cr_assert_eq(err_exit_status(ERR_OK), 0);
    cr_assert_eq(err_exit_status(ERR_SPEC), 2);
    cr_assert_eq(err_exit_status(ERR_PARSE), 2);
    cr_assert_eq(err_exit_status(ERR_ARG), 2);
    cr_assert_eq(err_exit_status(ERR_IO), 1);
    cr_assert_str_eq(err_code_name(ERR_NET), "network error");
    cr_assert_str_eq(err_code_name(999), "unknown error");
}
