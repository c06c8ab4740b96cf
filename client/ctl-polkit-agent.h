/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <sys/types.h>

/* A text-mode polkit agent for an interactive claim typed at a terminal, as
 * systemctl starts one: without an agent (no desktop session) polkit has
 * nobody to ask and refuses. pkttyagent (package polkitd) is started for this
 * process when standard input and error are terminals and it is installed;
 * otherwise nothing happens and a desktop agent, if any, answers. Returns the
 * agent's pid, or 0 when none was started. */
pid_t polkit_agent_open(void);
/* Stop it again (no-op for 0). */
void polkit_agent_close(pid_t pid);
