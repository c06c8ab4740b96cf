/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Runs a fuzz target over files or directories of inputs, so the corpus is a
 * regression test in every build (libFuzzer builds are opt-in: -Dfuzzing=true). */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path) {
        FILE *f = fopen(path, "rbe");
        uint8_t *buf;
        long n;

        if (!f)
                return perror(path), 1;
        if (fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) < 0)
                return fclose(f), perror(path), 1;
        buf = malloc((size_t) n + 1);
        if (!buf || fread(buf, 1, (size_t) n, f) != (size_t) n)
                return fclose(f), free(buf), fprintf(stderr, "%s: read failed\n", path), 1;
        fclose(f);
        LLVMFuzzerTestOneInput(buf, (size_t) n);
        free(buf);
        return 0;
}

int main(int argc, char *argv[]) {
        unsigned count = 0;

        for (int i = 1; i < argc; i++) {
                struct stat st;
                if (stat(argv[i], &st) < 0)
                        return perror(argv[i]), 1;
                if (!S_ISDIR(st.st_mode)) {
                        if (run_file(argv[i]))
                                return 1;
                        count++;
                        continue;
                }
                DIR *d = opendir(argv[i]);
                struct dirent *de;
                if (!d)
                        return perror(argv[i]), 1;
                while ((de = readdir(d))) {
                        char p[4096];
                        if (de->d_name[0] == '.')
                                continue;
                        snprintf(p, sizeof(p), "%s/%s", argv[i], de->d_name);
                        if (run_file(p))
                                return closedir(d), 1;
                        count++;
                }
                closedir(d);
        }
        printf("replayed %u inputs\n", count);
        return count ? 0 : 1;
}
