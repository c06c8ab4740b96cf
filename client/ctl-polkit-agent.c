/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctl-polkit-agent.h"

#define PKTTYAGENT "/usr/bin/pkttyagent"
/* pkttyagent closes its notify fd once registered; under load that takes a
 * moment, and without it the claim would find no agent. */
#define AGENT_READY_TIMEOUT_MS 5000

pid_t polkit_agent_open(void) {
        char notify[16], process[32];
        int pipefd[2];
        pid_t pid;

        if (!isatty(STDIN_FILENO) || !isatty(STDERR_FILENO) || access(PKTTYAGENT, X_OK) < 0)
                return 0;
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return 0;
        snprintf(process, sizeof(process), "%d", (int) getpid());
        pid = fork();
        if (pid < 0) {
                close(pipefd[0]);
                close(pipefd[1]);
                return 0;
        }
        if (pid == 0) {
                /* The write end, without O_CLOEXEC, is the notify fd. */
                int fd = dup(pipefd[1]);
                if (fd < 0)
                        _exit(127);
                snprintf(notify, sizeof(notify), "%d", fd);
                /* Its prompt goes to the terminal: stdout may be data. */
                if (dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
                        _exit(127);
                execl(PKTTYAGENT, "pkttyagent", "--notify-fd", notify, "--fallback", "--process", process,
                      (char *) NULL);
                _exit(127);
        }
        close(pipefd[1]);
        /* Ready when it closes the pipe (or dies: then the claim goes on without it). */
        struct pollfd p = { .fd = pipefd[0], .events = POLLIN };
        while (poll(&p, 1, AGENT_READY_TIMEOUT_MS) < 0 && errno == EINTR)
                ;
        close(pipefd[0]);
        return pid;
}

void polkit_agent_close(pid_t pid) {
        if (pid <= 0)
                return;
        (void) kill(pid, SIGTERM);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
}
