/*
 * An algorithm that takes its time: for jobs that hit their time limit, are cancelled or are
 * deleted while running, and (with user 0:0) for the image the operator must refuse to run.
 *
 * Prints a line, sleeps argv[1] seconds (default 3600), prints a line and exits 0. On SIGTERM
 * (what the kubelet sends first) it prints a line and exits 143, as a shell would report it;
 * the handler matters because as PID 1 of its container a signal without one is ignored.
 *
 * Build: gcc -static -Os -s -o sleeper sleeper.c      Usage: sleeper [SECONDS]
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void terminated(int sig) {
    static const char line[] = "sleeper: terminated, exiting 143\n";
    (void)sig;
    (void)!write(STDOUT_FILENO, line, sizeof line - 1);
    _exit(143);
}

int main(int argc, char **argv) {
    unsigned long seconds = 3600;
    struct sigaction action;
    struct timespec left;
    char *end;

    if (argc > 1) {
        seconds = strtoul(argv[1], &end, 10);
        if (*argv[1] == '\0' || *end != '\0') {
            fprintf(stderr, "usage: sleeper [SECONDS]\n");
            return 2;
        }
    }
    memset(&action, 0, sizeof action);
    action.sa_handler = terminated;
    sigemptyset(&action.sa_mask);
    sigaction(SIGTERM, &action, NULL);

    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("sleeper: sleeping %lu seconds\n", seconds);
    left.tv_sec = (time_t)seconds;
    left.tv_nsec = 0;
    while (nanosleep(&left, &left) != 0) {
        /* interrupted by a signal that did not end the program: sleep the rest */
    }
    printf("sleeper: done\n");
    return 0;
}
