/*
 * The sandbox ("pause") program of every pod on the testenv's real node.
 *
 * containerd's CRI plugin starts one sandbox container per pod to hold the pod's namespaces;
 * the sandbox image is configured as localhost/testenv/pause:1 and imported ahead of time,
 * so the node never pulls anything from the internet. As PID 1 of the pod (when the pod
 * shares its PID namespace) it reaps orphaned children; it exits 0 when told to stop.
 *
 * Build: gcc -static -Os -s -o pause pause.c      Usage: pause [-v]
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define VERSION "testenv-pause 1"

static void stop(int sig) {
    (void)sig;
    _exit(0);
}

static void reap(int sig) {
    int saved = errno;
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
    errno = saved;
}

static void on(int sig, void (*handler)(int), int flags) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = handler;
    action.sa_flags = flags;
    sigemptyset(&action.sa_mask);
    if (sigaction(sig, &action, NULL) != 0) {
        perror("pause: sigaction");
        _exit(1);
    }
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "-v") == 0) {
        printf("%s\n", VERSION);
        return 0;
    }
    on(SIGINT, stop, 0);
    on(SIGTERM, stop, 0);
    on(SIGCHLD, reap, SA_NOCLDSTOP | SA_RESTART);
    if (getpid() != 1) {
        fprintf(stderr, "pause: warning: not running as PID 1, orphaned processes are not reaped here\n");
    }
    for (;;) {
        pause();
    }
}
