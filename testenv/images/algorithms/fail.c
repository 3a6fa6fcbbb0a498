/*
 * An algorithm that fails the way real ones do: some progress on stdout, then an error on
 * stderr and exit code 3. The operator must report the job as failed with that last stderr
 * line as the error message (grand-challenge shows users the tail of stderr).
 *
 * Build: gcc -static -Os -s -o fail fail.c      Usage: fail [MESSAGE]
 */
#include <stdio.h>

int main(int argc, char **argv) {
    const char *message = argc > 1 ? argv[1] : "error: could not segment: input volume is empty";
    printf("fail: reading /input/inputs.json\n");
    printf("fail: segmenting\n");
    fflush(stdout);
    fprintf(stderr, "%s\n", message);
    return 3;
}
