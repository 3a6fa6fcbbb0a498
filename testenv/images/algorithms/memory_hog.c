/*
 * An algorithm that uses more memory than it is given: the testenv's real node runs it to
 * check that a job whose container the kernel OOM-kills ends as "out of memory" (exit 137,
 * reason OOMKilled) rather than as an ordinary failure.
 *
 * It allocates 16 MiB at a time and writes every byte (so every page is really resident, not
 * just reserved), printing the running total on stdout, until the kernel kills it. If an
 * allocation is refused (an address-space limit rather than a memory cgroup), it says so on
 * stderr and exits 1.
 *
 * Build: gcc -static -Os -s -o memory-hog memory_hog.c
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_MIB 16

int main(void) {
    size_t total = 0;
    setvbuf(stdout, NULL, _IOLBF, 0); /* a line at a time even into a pipe: the log shows how far it got */
    printf("memory-hog: allocating %d MiB chunks until the kernel stops me\n", CHUNK_MIB);
    for (;;) {
        char *chunk = malloc((size_t)CHUNK_MIB << 20);
        if (chunk == NULL) {
            fprintf(stderr, "memory-hog: allocation refused after %zu MiB\n", total);
            return 1;
        }
        memset(chunk, 0xa5, (size_t)CHUNK_MIB << 20);
        total += CHUNK_MIB;
        printf("memory-hog: %zu MiB allocated and touched\n", total);
    }
}
