/* dist/preempt.c - signal flags for preemption (see dist/preempt.h). */
#include "dist/preempt.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t g_sig, g_ints;
static struct sigaction g_old[3];
static const int g_sigs[3] = {SIGUSR1, SIGTERM, SIGINT};
static int g_installed;

static void on_signal(int sig)
{
    if (sig == SIGINT && g_ints++ > 0) {
        static const char msg[] = "dfm: second SIGINT: exiting now without saving\n";
        ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
        (void)w;
        _exit(130);
    }
    if (!g_sig) g_sig = sig;
}

void preempt_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    g_sig = 0;
    g_ints = 0;
    for (int i = 0; i < 3; i++) sigaction(g_sigs[i], &sa, &g_old[i]);
    g_installed = 1;
}

static sigset_t preempt_set(void)
{
    sigset_t set;
    sigemptyset(&set);
    for (int i = 0; i < 3; i++) sigaddset(&set, g_sigs[i]);
    return set;
}

void preempt_block(void)
{
    sigset_t set = preempt_set();
    sigprocmask(SIG_BLOCK, &set, NULL);
}

void preempt_unblock(void)
{
    sigset_t set = preempt_set();
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

void preempt_restore(void)
{
    if (!g_installed) return;
    for (int i = 0; i < 3; i++) sigaction(g_sigs[i], &g_old[i], NULL);
    g_installed = 0;
}

int preempt_pending(void) { return (int)g_sig; }

void preempt_fault_startup(const char *point, int rank)
{
    const char *e = getenv("DFM_FAULT_SIGNAL_STARTUP");
    if (!e || !*e) return;
    size_t k = strcspn(e, "@");
    if (strlen(point) != k || strncmp(e, point, k) != 0) return;
    if (e[k] == '@' && (rank < 0 || atoi(e + k + 1) != rank)) return;
    /* once per run: the process image after a re-exec must not send it again */
    if (!strcmp(point, "exec")) unsetenv("DFM_FAULT_SIGNAL_STARTUP");
    raise(SIGUSR1);
}

const char *preempt_signal_name(int sig)
{
    switch (sig) {
    case SIGUSR1: return "SIGUSR1";
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    default: return "a signal";
    }
}
