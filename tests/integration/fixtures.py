"""USB device fixtures for the tier-2 tests: Python descriptions -> umockdev text.

Each UsbDevice renders the P:/N:/E:/A:/H:/L: blocks that umockdev-record would
write for a usb_device and its usb_interface children, with sysattr values in
the kernel's own formats (drivers/usb/core/sysfs.c): e.g. bNumInterfaces is
"%2d" (" 1"), bAlternateSetting "%2d", the ids "%04x", the class bytes "%02x".

The binary `descriptors` sysattr (and the content of the /dev/bus/usb node,
which usbfs read() returns) is built from the same description, byte for byte
as the kernel exposes it: the 18-byte device descriptor followed by the raw
descriptors of every configuration (config, interface with all alternate
settings, class-specific and endpoint descriptors), each wTotalLength long.
"""

import struct
from dataclasses import dataclass, field

USB_DT_DEVICE = 0x01
USB_DT_CONFIG = 0x02
USB_DT_INTERFACE = 0x04
USB_DT_ENDPOINT = 0x05

EP_CONTROL, EP_ISO, EP_BULK, EP_INTR = 0, 1, 2, 3
EP_TYPE_NAMES = {EP_CONTROL: "control", EP_ISO: "isochronous", EP_BULK: "bulk", EP_INTR: "interrupt"}

# sysfs "speed" value -> (D-Bus Speed string, Mb/s as zcusbctl --json prints it)
SPEEDS = {
    "1.5": ("low", 1.5),
    "12": ("full", 12),
    "480": ("high", 480),
    "5000": ("super", 5000),
    "10000": ("super-plus", 10000),
    "20000": ("super-plus", 20000),
}

CONTROLLER = "/devices/pci0000:00/0000:00:14.0"


@dataclass
class Endpoint:
    address: int
    attributes: int  # bmAttributes; low 2 bits = transfer type
    max_packet: int
    interval: int = 0

    @property
    def type_name(self):
        return EP_TYPE_NAMES[self.attributes & 3]

    @property
    def direction(self):
        return "in" if self.address & 0x80 else "out"

    def raw(self):
        return struct.pack("<BBBBHB", 7, USB_DT_ENDPOINT, self.address, self.attributes,
                           self.max_packet, self.interval)


@dataclass
class AltSetting:
    alt: int
    cls: int
    subcls: int = 0
    proto: int = 0
    endpoints: list = field(default_factory=list)
    extra: bytes = b""  # class-specific descriptors between interface and endpoints
    iface_string: int = 0

    def raw(self, number):
        d = struct.pack("<BBBBBBBBB", 9, USB_DT_INTERFACE, number, self.alt,
                        len(self.endpoints), self.cls, self.subcls, self.proto,
                        self.iface_string)
        return d + self.extra + b"".join(e.raw() for e in self.endpoints)


@dataclass
class Interface:
    number: int
    alts: list
    driver: str = ""  # kernel driver bound ("" = none)
    props: dict = field(default_factory=dict)  # extra udev properties (ZCUSB_*)

    def alt(self, n):
        return next(a for a in self.alts if a.alt == n)


@dataclass
class Config:
    value: int
    interfaces: list
    attributes: int = 0x80
    max_power_ma: int = 100
    config_string: int = 0

    def raw(self, superspeed=False):
        body = b"".join(a.raw(i.number) for i in self.interfaces for a in i.alts)
        unit = 8 if superspeed else 2
        head = struct.pack("<BBHBBBBB", 9, USB_DT_CONFIG, 9 + len(body), len(self.interfaces),
                           self.value, self.config_string, self.attributes,
                           self.max_power_ma // unit)
        return head + body


def _esc(v):
    return str(v).replace("\\", "\\\\").replace("\n", "\\n")


@dataclass
class UsbDevice:
    sysname: str  # "1-1" or "usb1"
    parent: str  # sysfs path (without /sys) of the parent device
    busnum: int
    devnum: int
    vid: int
    pid: int
    bcd_device: int
    speed: str  # sysfs value: "1.5", "12", "480", "5000", ...
    configs: list
    active_config: int = 1  # bConfigurationValue; 0 = unconfigured
    manufacturer: str = ""
    product: str = ""
    serial: str = ""
    bcd_usb: int = 0x0200
    cls: int = 0
    subcls: int = 0
    proto: int = 0
    maxpacket0: int = 64
    props: dict = field(default_factory=dict)  # extra udev properties (ZCUSB_*)
    removable: str = "removable"
    maxchild: int = 0

    # ---- derived facts, used by the tests to compute expectations ----
    @property
    def syspath(self):
        """Path relative to the sysfs root, as umockdev wants it (/devices/...)."""
        return f"{self.parent}/{self.sysname}"

    @property
    def sys_syspath(self):
        return "/sys" + self.syspath

    @property
    def object_path(self):
        return f"/org/zcusb1/device/usb{self.busnum}_{self.devnum}"

    @property
    def devname(self):
        return f"/dev/bus/usb/{self.busnum:03d}/{self.devnum:03d}"

    @property
    def devpath(self):
        """sysfs 'devpath' attribute: port chain, '0' for a root hub."""
        return self.sysname.split("-", 1)[1] if "-" in self.sysname else "0"

    @property
    def speed_name(self):
        return SPEEDS[self.speed][0]

    @property
    def speed_mbps(self):
        return SPEEDS[self.speed][1]

    @property
    def speed_kbps(self):
        return int(SPEEDS[self.speed][1] * 1000)

    @property
    def minor(self):
        return (self.busnum - 1) * 128 + self.devnum - 1

    def config(self, value=None):
        value = self.active_config if value is None else value
        return next((c for c in self.configs if c.value == value), None)

    def interface_sysname(self, ifnum):
        # the root hub's interface is "1-0:1.0", not "usb1:1.0"
        return f"{self.busnum}-{self.devpath}:{self.active_config}.{ifnum}"

    def interface_syspath(self, ifnum):
        return f"{self.syspath}/{self.interface_sysname(ifnum)}"

    def string_indexes(self):
        i, out = 1, []
        for s in (self.manufacturer, self.product, self.serial):
            out.append(i if s else 0)
            i += 1 if s else 0
        return out

    def device_descriptor(self):
        im, ip, isn = self.string_indexes()
        return struct.pack("<BBHBBBBHHHBBBB", 18, USB_DT_DEVICE, self.bcd_usb, self.cls,
                           self.subcls, self.proto, self.maxpacket0, self.vid, self.pid,
                           self.bcd_device, im, ip, isn, len(self.configs))

    def descriptors(self):
        """Exactly what the kernel's sysfs `descriptors` file holds."""
        ss = self.speed in ("5000", "10000", "20000")
        return self.device_descriptor() + b"".join(c.raw(ss) for c in self.configs)

    def expected_interfaces(self):
        """The D-Bus Interfaces property the daemon should export: every alt of
        the active configuration, as (num, alt, cls, sub, proto, driver, [(ep...)])."""
        cfg = self.config()
        out = []
        for i in (cfg.interfaces if cfg else []):
            for a in i.alts:
                out.append((i.number, a.alt, a.cls, a.subcls, a.proto, i.driver,
                            [(e.address, e.attributes, e.max_packet, e.interval)
                             for e in a.endpoints]))
        return out

    # ---- umockdev text ----
    def umockdev_text(self):
        desc = self.descriptors().hex().upper()
        cfg = self.config()
        props = {
            "SUBSYSTEM": "usb",
            "DEVTYPE": "usb_device",
            "DRIVER": "usb",
            "DEVNAME": self.devname,
            "BUSNUM": f"{self.busnum:03d}",
            "DEVNUM": f"{self.devnum:03d}",
            "PRODUCT": f"{self.vid:x}/{self.pid:x}/{self.bcd_device:x}",
            "TYPE": f"{self.cls}/{self.subcls}/{self.proto}",
            "ID_BUS": "usb",
            "ID_VENDOR_ID": f"{self.vid:04x}",
            "ID_MODEL_ID": f"{self.pid:04x}",
        }
        props.update(self.props)
        attrs = {
            "authorized": "1",
            "avoid_reset_quirk": "0",
            "bConfigurationValue": str(self.active_config) if self.active_config else "",
            "bDeviceClass": f"{self.cls:02x}",
            "bDeviceProtocol": f"{self.proto:02x}",
            "bDeviceSubClass": f"{self.subcls:02x}",
            "bMaxPacketSize0": str(self.maxpacket0),
            "bMaxPower": f"{cfg.max_power_ma}mA" if cfg else "0mA",
            "bNumConfigurations": str(len(self.configs)),
            "bNumInterfaces": f"{len(cfg.interfaces) if cfg else 0:2d}",
            "bcdDevice": f"{self.bcd_device:04x}",
            "bmAttributes": f"{cfg.attributes if cfg else 0:2x}",
            "busnum": str(self.busnum),
            "configuration": "",
            "dev": f"189:{self.minor}",
            "devnum": str(self.devnum),
            "devpath": self.devpath,
            "idProduct": f"{self.pid:04x}",
            "idVendor": f"{self.vid:04x}",
            "ltm_capable": "no",
            "maxchild": str(self.maxchild),
            "quirks": "0x0",
            "removable": self.removable,
            "speed": self.speed,
            "urbnum": "42",
            "version": f"{self.bcd_usb >> 8:2x}.{self.bcd_usb & 0xff:02x}",
        }
        if self.manufacturer:
            attrs["manufacturer"] = self.manufacturer
        if self.product:
            attrs["product"] = self.product
        if self.serial:
            attrs["serial"] = self.serial
        depth = self.syspath.count("/")
        lines = [f"P: {self.syspath}", f"N: {self.devname[len('/dev/'):]}={desc}"]
        lines += [f"E: {k}={_esc(v)}" for k, v in props.items()]
        lines += [f"A: {k}={_esc(v)}" for k, v in attrs.items()]
        lines.append(f"H: descriptors={desc}")
        lines.append("L: driver=" + "../" * depth + "bus/usb/drivers/usb")
        blocks = ["\n".join(lines) + "\n"]
        for i in (cfg.interfaces if cfg else []):
            blocks.append(self._interface_text(i))
        return "\n".join(blocks) + "\n"

    def _interface_text(self, i):
        a = i.alt(0)  # the kernel selects altsetting 0 at configuration time
        modalias = (f"usb:v{self.vid:04X}p{self.pid:04X}d{self.bcd_device:04X}"
                    f"dc{self.cls:02X}dsc{self.subcls:02X}dp{self.proto:02X}"
                    f"ic{a.cls:02X}isc{a.subcls:02X}ip{a.proto:02X}in{i.number:02X}")
        props = {
            "SUBSYSTEM": "usb",
            "DEVTYPE": "usb_interface",
            "PRODUCT": f"{self.vid:x}/{self.pid:x}/{self.bcd_device:x}",
            "TYPE": f"{self.cls}/{self.subcls}/{self.proto}",
            "INTERFACE": f"{a.cls}/{a.subcls}/{a.proto}",
            "MODALIAS": modalias,
        }
        if i.driver:
            props["DRIVER"] = i.driver
        props.update(i.props)
        attrs = {
            "authorized": "1",
            "bAlternateSetting": f"{a.alt:2d}",
            "bInterfaceClass": f"{a.cls:02x}",
            "bInterfaceNumber": f"{i.number:02x}",
            "bInterfaceProtocol": f"{a.proto:02x}",
            "bInterfaceSubClass": f"{a.subcls:02x}",
            "bNumEndpoints": f"{len(a.endpoints):02x}",
            "modalias": modalias,
            "supports_autosuspend": "1",
        }
        path = self.interface_syspath(i.number)
        lines = [f"P: {path}"]
        lines += [f"E: {k}={_esc(v)}" for k, v in props.items()]
        lines += [f"A: {k}={_esc(v)}" for k, v in attrs.items()]
        if i.driver:
            lines.append("L: driver=" + "../" * path.count("/") + f"bus/usb/drivers/{i.driver}")
        return "\n".join(lines) + "\n"


def controller_text():
    return (f"P: {CONTROLLER}\nE: SUBSYSTEM=pci\nE: DRIVER=xhci_hcd\n"
            "E: PCI_CLASS=C0330\nE: PCI_ID=8086:A36D\nE: PCI_SLOT_NAME=0000:00:14.0\n"
            "A: class=0x0c0330\nA: vendor=0x8086\nA: device=0xa36d\n"
            "L: driver=../../../bus/pci/drivers/xhci_hcd\n\n")


# ---------------------------------------------------------------------------
# The devices

def root_hub(busnum=1, **props):
    """xHCI USB 2.0 root hub, 1d6b:0002, sysname usbN, address 1."""
    hub_if = Interface(0, [AltSetting(0, 9, 0, 0, [Endpoint(0x81, EP_INTR, 4, 12)])],
                       driver="hub")
    return UsbDevice(
        sysname=f"usb{busnum}", parent=CONTROLLER, busnum=busnum, devnum=1,
        vid=0x1d6b, pid=0x0002, bcd_device=0x0601, speed="480", cls=9, subcls=0, proto=1,
        manufacturer="Linux 6.1.0-56-amd64 xhci-hcd", product="xHCI Host Controller",
        serial="0000:00:14.0", configs=[Config(1, [hub_if], attributes=0xe0, max_power_ma=0)],
        props=dict(props), removable="unknown", maxchild=4)


def gadget_zero(devnum=3, port="1", iface_props=None, **props):
    """SourceSink (configfs) as in vm-notes: 0525:a4a0, high speed; interface 0
    alt 0 bulk IN 0x81 / bulk OUT 0x02 (512); alt 1 adds iso IN 0x83 / OUT 0x04."""
    bulk = [Endpoint(0x81, EP_BULK, 512), Endpoint(0x02, EP_BULK, 512)]
    iso = [Endpoint(0x83, EP_ISO, 1024, 4), Endpoint(0x04, EP_ISO, 1024, 4)]
    intf = Interface(0, [AltSetting(0, 0xff, 0, 0, bulk), AltSetting(1, 0xff, 0, 0, bulk + iso)],
                     props=dict(iface_props or {}))
    return UsbDevice(
        sysname=f"1-{port}", parent=f"{CONTROLLER}/usb1", busnum=1, devnum=devnum,
        vid=0x0525, pid=0xa4a0, bcd_device=0x0601, speed="480",
        manufacturer="Linux 6.1.0-56-amd64 with dummy_udc", product="Gadget Zero",
        serial="0123456789.0123456789.0123456789",
        configs=[Config(1, [intf], attributes=0x80, max_power_ma=120)], props=dict(props))


# Boot keyboard report descriptor length: 63 bytes (HID 1.11 appendix B.1 layout)
_HID_DESC = struct.pack("<BBHBBBH", 9, 0x21, 0x0111, 0, 1, 0x22, 63)


def hid_keyboard(devnum=4, port="2", iface_props=None, **props):
    """Logitech K120 046d:c31c, low speed; interface 0 bound to usbhid, class 3/1/1,
    HID class descriptor, interrupt IN 0x81 maxpacket 8 interval 10."""
    intf = Interface(0, [AltSetting(0, 3, 1, 1, [Endpoint(0x81, EP_INTR, 8, 10)], extra=_HID_DESC)],
                     driver="usbhid", props=dict(iface_props or {}))
    return UsbDevice(
        sysname=f"1-{port}", parent=f"{CONTROLLER}/usb1", busnum=1, devnum=devnum,
        vid=0x046d, pid=0xc31c, bcd_device=0x6400, speed="1.5", bcd_usb=0x0110, maxpacket0=8,
        manufacturer="Logitech", product="USB Keyboard",
        configs=[Config(1, [intf], attributes=0xa0, max_power_ma=90)], props=dict(props))


def loopback_two_configs(devnum=5, port="3", **props):
    """A hot-plugged device with two configurations where the ACTIVE one is the
    second in the descriptors (bConfigurationValue 2): the daemon must pick the
    configuration by value, not take the first. Config 1: one vendor interface
    (bulk 0x81/0x01 64). Config 2: two interfaces; if 0 bulk 0x81/0x02 512, if 1
    interrupt IN 0x83 maxpacket 16 interval 4. Also: no serial string."""
    c1 = Config(1, [Interface(0, [AltSetting(0, 0xff, 0, 0, [Endpoint(0x81, EP_BULK, 64),
                                                             Endpoint(0x01, EP_BULK, 64)])])])
    c2 = Config(2, [Interface(0, [AltSetting(0, 0xff, 1, 2, [Endpoint(0x81, EP_BULK, 512),
                                                             Endpoint(0x02, EP_BULK, 512)])]),
                    Interface(1, [AltSetting(0, 0xff, 3, 4, [Endpoint(0x83, EP_INTR, 16, 4)])])],
                max_power_ma=200)
    return UsbDevice(
        sysname=f"1-{port}", parent=f"{CONTROLLER}/usb1", busnum=1, devnum=devnum,
        vid=0x0525, pid=0xa4a4, bcd_device=0x0100, speed="480",
        manufacturer="zcusb", product="Loopback Two Configs", serial="",
        configs=[c1, c2], active_config=2, props=dict(props))


def standard_devices(hub_props=None, gadget_props=None, hid_props=None):
    return [root_hub(**(hub_props or {})), gadget_zero(**(gadget_props or {})),
            hid_keyboard(**(hid_props or {}))]


def testbed_text(devices):
    return controller_text() + "".join(d.umockdev_text() for d in devices)


if __name__ == "__main__":
    print(testbed_text(standard_devices()), end="")
