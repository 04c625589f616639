"""Power sampling for benchmarks/suite.py, where the board offers it.

- Jetson (JetPack 4.x, e.g. the Nano): the INA3221 monitor through the ina3221x driver's IIO
  files, rail_name_N / in_power N_input (mW). The board's input rail (a name containing "IN",
  e.g. POM_5V_IN) is the whole board; without one, the rails are summed.
- Jetson (JetPack 5 and later): the mainline ina3221 driver's hwmon files, inN_label,
  inN_input (mV) and currN_input (mA).
- Raspberry Pi: no power sensor (a Pi 5's PMIC ADCs aside, not read here); the firmware's
  throttling flags instead (get_throttled, from sysfs or vcgencmd): a run during which the board
  was under-voltage, frequency-capped, throttled or at its soft temperature limit is discarded.

Everything is read below `root` (default "/"), so tests can point it at a directory tree.
Elsewhere `detect()` returns None and energy is reported as absent, never estimated.
"""
import glob
import os
import re
import subprocess
import threading
import time


def _read(path):
    with open(path) as f:
        return f.read().strip()


class IioRails:
    """JetPack 4.x: /sys/bus/i2c/drivers/ina3221x/*/iio:device*/in_power<N>_input in mW."""

    def __init__(self, root):
        self.files = []  # (rail name, power file)
        for dev in sorted(glob.glob(os.path.join(root, "sys/bus/i2c/drivers/ina3221x/*/iio:device*"))):
            for p in sorted(glob.glob(os.path.join(dev, "in_power*_input"))):
                n = re.search(r"in_power(\d+)_input$", p).group(1)
                name_file = os.path.join(dev, f"rail_name_{n}")
                name = _read(name_file) if os.path.exists(name_file) else f"rail{n}"
                self.files.append((name, p))
        inputs = [f for f in self.files if "IN" in f[0].upper()]
        self.used = inputs[:1] if inputs else self.files
        self.description = "INA3221 (ina3221x IIO): " + ", ".join(n for n, _ in self.used)

    def watts(self):
        return sum(float(_read(p)) for _, p in self.used) / 1000.0


class HwmonRails:
    """JetPack 5+: hwmon of the ina3221 driver, inN_input (mV) x currN_input (mA)."""

    def __init__(self, root):
        self.channels = []  # (label, volts file, amps file)
        for hw in sorted(glob.glob(os.path.join(root, "sys/class/hwmon/hwmon*"))):
            name = os.path.join(hw, "name")
            if not os.path.exists(name) or _read(name) != "ina3221":
                continue
            for c in sorted(glob.glob(os.path.join(hw, "curr*_input"))):
                n = re.search(r"curr(\d+)_input$", c).group(1)
                v = os.path.join(hw, f"in{n}_input")
                label = os.path.join(hw, f"in{n}_label")
                if os.path.exists(v):
                    self.channels.append((_read(label) if os.path.exists(label) else f"in{n}", v, c))
        inputs = [c for c in self.channels if "IN" in c[0].upper()]
        self.used = inputs[:1] if inputs else self.channels
        self.description = "INA3221 (hwmon): " + ", ".join(c[0] for c in self.used)

    def watts(self):
        return sum(float(_read(v)) * float(_read(c)) for _, v, c in self.used) / 1e6


def detect(root="/"):
    """A power source with .watts() and .description, or None."""
    for cls in (IioRails, HwmonRails):
        src = cls(root)
        if src.used:
            return src
    return None


# Raspberry Pi firmware flags: bits 0-3 now, bits 16-19 since boot.
THROTTLE_NOW = {0: "under-voltage", 1: "arm frequency capped", 2: "throttled", 3: "soft temperature limit"}


def read_throttled(root="/"):
    """The get_throttled bits, or None where there is no such firmware."""
    for path in ("sys/devices/platform/soc/soc:firmware/get_throttled",
                 "sys/devices/platform/soc/soc:firmware/raspberrypi-hwmon/get_throttled"):
        p = os.path.join(root, path)
        if os.path.exists(p):
            return int(_read(p), 16)
    if root == "/":
        try:
            out = subprocess.run(["vcgencmd", "get_throttled"], capture_output=True, text=True, timeout=5).stdout
            m = re.search(r"throttled=(0x[0-9a-fA-F]+)", out)
            return int(m.group(1), 16) if m else None
        except (OSError, subprocess.SubprocessError):
            return None
    return None


def throttle_problems(before, after):
    """Why a run between two get_throttled readings must be discarded ([] if it need not)."""
    if before is None or after is None:
        return []
    problems = [name for bit, name in THROTTLE_NOW.items() if after & (1 << bit)]
    occurred = (after >> 16) & ~(before >> 16) & 0xF
    problems += [f"{name} (during the run)" for bit, name in THROTTLE_NOW.items() if occurred & (1 << bit)]
    return problems


class Sampler:
    """Samples a power source every `period_s` on a thread while a run lasts; energy by the
    trapezoid rule. Use as a context manager; .result() after it closes."""

    def __init__(self, source, period_s=0.05, root="/"):
        self.source, self.period_s, self.root = source, period_s, root
        self.samples = []  # (monotonic seconds, watts)
        self._stop = threading.Event()
        self._thread = None

    def __enter__(self):
        self.throttled_before = read_throttled(self.root)
        if self.source is not None:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def _loop(self):
        while True:
            self.samples.append((time.monotonic(), self.source.watts()))
            if self._stop.wait(self.period_s):
                self.samples.append((time.monotonic(), self.source.watts()))
                return

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.throttled_after = read_throttled(self.root)
        return False

    def energy_between(self, t0, t1):
        """Joules drawn between two monotonic times inside the sampled span (power linear
        between samples), or None without a power source."""
        if self.source is None or len(self.samples) < 2 or t1 <= t0:
            return None
        e = 0.0
        for (a, wa), (b, wb) in zip(self.samples, self.samples[1:]):
            lo, hi = max(a, t0), min(b, t1)
            if hi <= lo:
                continue
            w = lambda t: wa + (wb - wa) * (t - a) / (b - a) if b > a else wa  # noqa: E731
            e += (hi - lo) * (w(lo) + w(hi)) / 2
        return e

    def result(self):
        out = {"discard": throttle_problems(self.throttled_before, self.throttled_after)}
        if self.source is None or len(self.samples) < 2:
            out["energy_j"] = None
            return out
        e = sum((t1 - t0) * (w0 + w1) / 2 for (t0, w0), (t1, w1) in zip(self.samples, self.samples[1:]))
        span = self.samples[-1][0] - self.samples[0][0]
        out.update(energy_j=e, mean_w=e / span if span > 0 else 0.0, samples=len(self.samples), seconds=span)
        return out
