/*
 * A hostile algorithm: it looks everywhere its uid can look for the job's signing key (and for
 * the presigned grants), and reports what it found as its outputs, so that a test can check
 * that the key is not among them. Image testenv/key-hunter (built by tests/e2e/conftest.py).
 *
 * The key is 32 random bytes, handed around as 64 lower-case hex digits; this program does not
 * know it, so it collects every run of exactly 64 hex digits it can read:
 *
 *   - its own environment, and /proc/<pid>/environ and cmdline of every process;
 *   - the memory of every process it can open (/proc/<pid>/maps + /proc/<pid>/mem), itself
 *     included (the positive control: an input's value it has read is in its own memory);
 *   - every regular file below /etc/component-operator, /agent, /tmp, /input, /opt/ml,
 *     /var/run/secrets, /run/secrets and /proc/1/root/tmp (the agent's /tmp, once more).
 *
 * It also counts the markers of presigned grants (X-Amz-Signature, x-amz-signature, a POST
 * policy's "x-amz-credential"; not in its own memory, which holds these strings) and notes
 * which of the interesting paths it could open.
 *
 * Outputs: /output/results.json {"algorithm", "uid", "readable": [paths], "denied": [paths],
 * "readableUnpacked"/"deniedUnpacked": how many paths inside the agent's unpacked bundle
 * (/tmp/_MEI*, /tmp/staticx-*: not listed), "grantMarkers": {where: count}, "candidates": n},
 * and /output/metrics.csv with one line "where,candidate" per finding (a CSV file: the
 * interface "CSV file (legacy)").
 *
 * Build: gcc -static -Os -s -o key-hunter key_hunter.c      Usage: key-hunter (no arguments)
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

extern char **environ;

#define MAX_FINDINGS 20000
#define MAX_PATHS 4000
#define FILE_LIMIT (64L * 1024 * 1024)
#define MEM_LIMIT (512L * 1024 * 1024)

static char *findings[MAX_FINDINGS];
static int n_findings;
static char *readable[MAX_PATHS], *denied[MAX_PATHS];
static int n_readable, n_denied;
static char *marker_where[MAX_PATHS];
static int marker_count[MAX_PATHS], n_markers;
static FILE *csv;

static void note(char **list, int *n, const char *path) {
    if (*n < MAX_PATHS) list[(*n)++] = strdup(path);
}

static int ishex(unsigned char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

static void finding(const char *where, const char *hex) {
    for (int i = 0; i < n_findings; i++)
        if (!strcmp(findings[i], hex)) return; /* each candidate once */
    if (n_findings >= MAX_FINDINGS) return;
    findings[n_findings++] = strdup(hex);
    fprintf(csv, "%s,%s\n", where, hex);
}

static int count_markers(const unsigned char *buf, size_t n) {
    static const char *markers[] = {"X-Amz-Signature", "x-amz-signature", "x-amz-credential"};
    int found = 0;
    for (size_t m = 0; m < sizeof markers / sizeof *markers; m++) {
        size_t len = strlen(markers[m]);
        for (size_t i = 0; i + len <= n; i++)
            if (buf[i] == (unsigned char)markers[m][0] && !memcmp(buf + i, markers[m], len)) found++;
    }
    return found;
}

static int scanning_self; /* our own memory holds the marker strings themselves: not counted */

/* Every run of exactly 64 hex digits in buf (memory is read in overlapping steps). */
static void scan(const char *where, const unsigned char *buf, size_t n) {
    size_t run = 0;
    char hex[65];
    for (size_t i = 0; i <= n; i++) {
        if (i < n && ishex(buf[i])) {
            run++;
            continue;
        }
        if (run == 64) {
            memcpy(hex, buf + i - 64, 64);
            hex[64] = 0;
            finding(where, hex);
        }
        run = 0;
    }
    int markers = scanning_self ? 0 : count_markers(buf, n);
    if (markers && n_markers < MAX_PATHS) {
        marker_where[n_markers] = strdup(where);
        marker_count[n_markers++] = markers;
    }
}

static void scan_file(const char *path) {
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    if (fd < 0) {
        note(denied, &n_denied, path);
        return;
    }
    struct stat st;
    if (fstat(fd, &st) || !(S_ISREG(st.st_mode))) {
        close(fd);
        return;
    }
    size_t size = st.st_size > FILE_LIMIT ? FILE_LIMIT : (size_t)st.st_size;
    unsigned char *buf = malloc(size + 1);
    size_t got = 0;
    ssize_t r;
    while (buf && got < size && (r = read(fd, buf + got, size - got)) > 0) got += r;
    close(fd);
    note(readable, &n_readable, path);
    if (buf) scan(path, buf, got);
    free(buf);
}

/* /proc files report size 0: read until EOF. */
static void scan_stream(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        note(denied, &n_denied, path);
        return;
    }
    size_t cap = 1 << 16, got = 0;
    unsigned char *buf = malloc(cap);
    ssize_t r = 0;
    while (buf && (r = read(fd, buf + got, cap - got)) > 0) {
        got += r;
        if (got == cap && cap < (1 << 24)) buf = realloc(buf, cap *= 2);
        else if (got == cap) break;
    }
    if (r < 0 && got == 0) {
        note(denied, &n_denied, path);
    } else {
        note(readable, &n_readable, path);
        for (size_t i = 0; i < got; i++)
            if (!buf[i]) buf[i] = '\n';
        if (buf) scan(path, buf, got);
    }
    close(fd);
    free(buf);
}

static void walk(const char *dir, int depth) {
    DIR *d = opendir(dir);
    if (!d) {
        note(denied, &n_denied, dir);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st)) continue;
        if (S_ISDIR(st.st_mode) && depth < 12) walk(path, depth + 1);
        else if (S_ISREG(st.st_mode)) scan_file(path);
    }
    closedir(d);
}

static void scan_memory(const char *pid) {
    char maps_path[64], mem_path[64], line[1024], where[96];
    snprintf(maps_path, sizeof maps_path, "/proc/%s/maps", pid);
    snprintf(mem_path, sizeof mem_path, "/proc/%s/mem", pid);
    FILE *maps = fopen(maps_path, "r");
    if (!maps) {
        note(denied, &n_denied, maps_path);
        return;
    }
    int mem = open(mem_path, O_RDONLY);
    if (mem < 0) {
        note(denied, &n_denied, mem_path);
        fclose(maps);
        return;
    }
    long total = 0;
    int any = 0;
    snprintf(where, sizeof where, "/proc/%s/mem", pid);
    while (fgets(line, sizeof line, maps) && total < MEM_LIMIT) {
        unsigned long start, end;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &start, &end, perms) != 3 || perms[0] != 'r') continue;
        if (strstr(line, "[vvar]") || strstr(line, "[vsyscall]")) continue;
        for (unsigned long at = start; at < end && total < MEM_LIMIT; at += 1 << 20) {
            /* 64 bytes more than the step: a run across two steps is seen whole in the first. */
            size_t len = end - at > (1 << 20) + 64 ? (1 << 20) + 64 : end - at;
            unsigned char *buf = malloc(len);
            ssize_t got = buf ? pread(mem, buf, len, (off_t)at) : -1;
            if (got > 0) {
                any = 1;
                total += got;
                scan(where, buf, (size_t)got);
            }
            free(buf);
        }
    }
    note(any ? readable : denied, any ? &n_readable : &n_denied, mem_path);
    close(mem);
    fclose(maps);
}

/* The bundled agent's unpacked files (hundreds, all readable) are counted, not listed. */
static int unpacked(const char *path) { return strstr(path, "/_MEI") || strstr(path, "/staticx-"); }

static void json_list(FILE *out, const char *name, char **list, int n) {
    int first = 1, skipped = 0;
    fprintf(out, "\"%s\": [", name);
    for (int i = 0; i < n; i++) {
        if (unpacked(list[i])) {
            skipped++;
            continue;
        }
        fprintf(out, "%s\"", first ? "" : ", ");
        first = 0;
        for (const char *c = list[i]; *c; c++)
            if (*c == '"' || *c == '\\') fprintf(out, "\\%c", *c);
            else if ((unsigned char)*c >= 32) fputc(*c, out);
        fputc('"', out);
    }
    fprintf(out, "], \"%sUnpacked\": %d", name, skipped);
}

int main(void) {
    csv = fopen("/output/metrics.csv", "w");
    if (!csv) {
        perror("/output/metrics.csv");
        return 3;
    }
    fprintf(csv, "where,candidate\n");
    /* The inputs first: their values land in our own memory (the positive control). */
    walk("/input", 0);
    for (char **e = environ; *e; e++) scan("environ", (const unsigned char *)*e, strlen(*e));
    DIR *proc = opendir("/proc");
    struct dirent *e;
    while (proc && (e = readdir(proc))) {
        if (!isdigit((unsigned char)e->d_name[0])) continue;
        char path[300];
        snprintf(path, sizeof path, "/proc/%s/environ", e->d_name);
        scan_stream(path);
        snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
        scan_stream(path);
        scanning_self = atoi(e->d_name) == (int)getpid();
        scan_memory(e->d_name);
        scanning_self = 0;
    }
    if (proc) closedir(proc);
    scanning_self = 1;
    scan_memory("self");
    scanning_self = 0;
    const char *dirs[] = {"/etc/component-operator", "/agent", "/tmp", "/opt/ml", "/var/run/secrets", "/run/secrets",
                          "/proc/1/root/tmp"};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) walk(dirs[i], 0);
    fclose(csv);

    FILE *out = fopen("/output/results.json", "w");
    if (!out) {
        perror("/output/results.json");
        return 3;
    }
    fprintf(out, "{\"algorithm\": \"key-hunter\", \"uid\": %d, \"candidates\": %d, ", (int)getuid(), n_findings);
    json_list(out, "readable", readable, n_readable);
    fprintf(out, ", ");
    json_list(out, "denied", denied, n_denied);
    fprintf(out, ", \"grantMarkers\": {");
    for (int i = 0; i < n_markers; i++) fprintf(out, "%s\"%s\": %d", i ? ", " : "", marker_where[i], marker_count[i]);
    fprintf(out, "}}\n");
    fclose(out);
    printf("key-hunter: %d candidate(s), %d readable and %d denied path(s), %d place(s) with grant markers\n",
           n_findings, n_readable, n_denied, n_markers);
    return 0;
}
