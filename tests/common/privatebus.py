# SPDX-License-Identifier: LGPL-2.1-or-later
"""The tests' private system bus: a dbus-daemon from a generated config, Debian's default-deny
system policy plus an <include> of the project's own policy, so the shipped
dbus/org.zcusb1.conf is what is exercised.

Used by tests/integration/zcusbtest.py and tests/libzcusb/run-with-fake-zcusbd.py, which put
this directory on sys.path (it is not a package and is not installed).
"""

import os
import subprocess

ROOT = os.environ.get("ZCUSB_SOURCE_ROOT") or os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

CONFIG_TEMPLATE = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <!-- Debian's /usr/share/dbus-1/system.conf default policy -->
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"
          send_member="UpdateActivationEnvironment"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Debug.Stats"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Debug.Stats"/>
  </policy>
  <!-- as polkit's own bus policy: root may own the authority's name (the
       integration tests run a fake one), anyone may talk to it -->
  <policy user="root">
    <allow own="org.freedesktop.PolicyKit1"/>
  </policy>
  <policy context="default">
    <allow send_destination="org.freedesktop.PolicyKit1"/>
  </policy>
  <!-- the project's own policy: what is under test -->
  <include>{project_policy}</include>
</busconfig>
"""


def project_policy_path():
    """$ZCUSB_DBUS_POLICY (another policy file to include instead), else the source tree's
    dbus/org.zcusb1.conf ($ZCUSB_SOURCE_ROOT, else two levels above this directory)."""
    return os.environ.get("ZCUSB_DBUS_POLICY") or os.path.join(ROOT, "dbus", "org.zcusb1.conf")


def start_dbus_daemon(directory, policy, env, stderr=None, preexec_fn=None):
    """Start dbus-daemon with DIRECTORY/bus.conf, listening on DIRECTORY/system_bus_socket and
    including POLICY, with environment ENV; its stderr goes to STDERR (None: ours).
    Returns (process, socket): the socket's path (the bus address is "unix:path=" + it), or
    None when the daemon did not start (it has exited then, its complaint on STDERR). The caller
    stops it."""
    socket = os.path.join(directory, "system_bus_socket")
    conf = os.path.join(directory, "bus.conf")
    with open(conf, "w") as f:
        f.write(CONFIG_TEMPLATE.format(socket=socket, project_policy=policy))
    p = subprocess.Popen(["dbus-daemon", "--nofork", f"--config-file={conf}", "--print-address"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, env=env,
                         preexec_fn=preexec_fn)
    if not p.stdout.readline().strip():
        p.wait()
        return p, None
    return p, socket
