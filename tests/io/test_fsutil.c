/* tests/io/test_fsutil.c - file-system helpers in a directory others can write to. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "io/fsutil.h"
#include "tests/tools/testsrv.h"

static char g_dir[64];

static void setup(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/dfm_fs_XXXXXX");
    cr_assert_not_null(mkdtemp(g_dir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
}

TestSuite(fsutil, .init = setup, .fini = teardown);

Test(fsutil, atomic_write_does_not_follow_a_planted_temporary)
{
    char out[128], tmp[160], victim[128];
    snprintf(out, sizeof out, "%s/weights.bin", g_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out, (long)getpid());
    snprintf(victim, sizeof victim, "%s/victim", g_dir);
    cr_assert_eq(test_write_file(victim, "keep", 4), 0);
    cr_assert_eq(symlink(victim, tmp), 0);
    AtomicFile af;
    cr_assert_eq(fs_atomic_open(&af, out), ERR_OK, "%s", err_message());
    fputs("new contents", af.f);
    cr_assert_eq(fs_atomic_commit(&af), ERR_OK, "%s", err_message());
    size_t n = 0;
    unsigned char *b = test_read_file(victim, &n);
    cr_assert(b && n == 4 && !memcmp(b, "keep", 4), "the write went through the planted link");
    free(b);
    b = test_read_file(out, &n);
    cr_assert(b && n == 12 && !memcmp(b, "new contents", 12));
    free(b);
    struct stat st;
    cr_assert_eq(lstat(out, &st), 0);
    cr_assert(S_ISREG(st.st_mode));
}

Test(fsutil, create_excl_replaces_a_link_not_its_target)
{
    char p[128], victim[128];
    snprintf(p, sizeof p, "%s/x.tmp", g_dir);
    snprintf(victim, sizeof victim, "%s/victim", g_dir);
    cr_assert_eq(test_write_file(victim, "keep", 4), 0);
    cr_assert_eq(link(victim, p), 0);
    int fd = -1;
    cr_assert_eq(fs_create_excl(p, &fd), ERR_OK, "%s", err_message());
    cr_assert_eq(write(fd, "zz", 2), 2);
    close(fd);
    size_t n = 0;
    unsigned char *b = test_read_file(victim, &n);
    cr_assert(b && n == 4 && !memcmp(b, "keep", 4));
    free(b);
}

Test(fsutil, append_owned_refuses_links)
{
    char p[128], victim[128];
    snprintf(p, sizeof p, "%s/x.part", g_dir);
    snprintf(victim, sizeof victim, "%s/victim", g_dir);
    cr_assert_eq(test_write_file(victim, "keep", 4), 0);
    int fd = -1;
    unsigned long long sz = 0;
    const char *why = NULL;
    cr_assert_eq(fs_open_append_owned(p, &fd, &sz, &why), 0);
    cr_assert_str_eq(why, "absent");
    cr_assert_eq(symlink(victim, p), 0);
    cr_assert_eq(fs_open_append_owned(p, &fd, &sz, &why), 0);
    cr_assert_str_eq(why, "a symbolic link");
    unlink(p);
    cr_assert_eq(link(victim, p), 0);
    cr_assert_eq(fs_open_append_owned(p, &fd, &sz, &why), 0);
    cr_assert_str_eq(why, "a file with other hard links");
    unlink(victim);
    cr_assert_eq(fs_open_append_owned(p, &fd, &sz, &why), 1);
    cr_assert_eq(sz, 4);
    close(fd);
}

Test(fsutil, empty_paths_are_errors)
{
    AtomicFile af;
    cr_assert_eq(fs_mkdir_p(""), ERR_ARG);
    cr_assert(strstr(err_message(), "empty path") != NULL, "%s", err_message());
    cr_assert_eq(fs_atomic_open(&af, ""), ERR_ARG);
    int fd;
    cr_assert_eq(fs_create_excl("", &fd), ERR_ARG);
}
