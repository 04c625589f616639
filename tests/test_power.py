#!/usr/bin/env python3
"""benchmarks/power.py against the sysfs layouts it reads: a Jetson's ina3221x IIO rails
(JetPack 4.x, the Nano), the mainline ina3221 hwmon channels (JetPack 5), a Raspberry Pi's
get_throttled flags, and a machine with none of them. The trees are written to a temporary
directory laid out as on the boards; values are those the drivers print (mW, mV, mA, hex)."""
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benchmarks"))
import power  # noqa: E402


def write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text + "\n")


class Detect(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def test_nothing_to_read_means_no_source_and_no_energy(self):
        self.assertIsNone(power.detect(self.root))
        self.assertIsNone(power.read_throttled(self.root))
        with power.Sampler(None, root=self.root) as s:
            pass
        self.assertEqual(s.result(), {"discard": [], "energy_j": None})
        self.assertIsNone(s.energy_between(0, 1))

    def test_jetson_nano_iio_uses_the_input_rail(self):
        dev = "sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0"
        for n, (name, mw) in enumerate([("POM_5V_IN", 4150), ("POM_5V_GPU", 820), ("POM_5V_CPU", 1630)]):
            write(self.root, f"{dev}/rail_name_{n}", name)
            write(self.root, f"{dev}/in_power{n}_input", str(mw))
        src = power.detect(self.root)
        self.assertIsInstance(src, power.IioRails)
        self.assertAlmostEqual(src.watts(), 4.150)
        self.assertIn("POM_5V_IN", src.description)

    def test_iio_without_an_input_rail_sums_the_rails(self):
        dev = "sys/bus/i2c/drivers/ina3221x/1-0040/iio:device0"
        for n, (name, mw) in enumerate([("VDD_CPU", 1000), ("VDD_GPU", 250)]):
            write(self.root, f"{dev}/rail_name_{n}", name)
            write(self.root, f"{dev}/in_power{n}_input", str(mw))
        self.assertAlmostEqual(power.detect(self.root).watts(), 1.25)

    def test_hwmon_multiplies_volts_and_amps_and_ignores_other_sensors(self):
        write(self.root, "sys/class/hwmon/hwmon0/name", "cpu_thermal")
        write(self.root, "sys/class/hwmon/hwmon0/temp1_input", "45000")
        hw = "sys/class/hwmon/hwmon3"
        write(self.root, f"{hw}/name", "ina3221")
        write(self.root, f"{hw}/in1_label", "VDD_IN")
        write(self.root, f"{hw}/in1_input", "5080")   # mV
        write(self.root, f"{hw}/curr1_input", "1200")  # mA
        write(self.root, f"{hw}/in2_label", "VDD_CPU_GPU_CV")
        write(self.root, f"{hw}/in2_input", "5072")
        write(self.root, f"{hw}/curr2_input", "400")
        src = power.detect(self.root)
        self.assertIsInstance(src, power.HwmonRails)
        self.assertAlmostEqual(src.watts(), 5.080 * 1.200)

    def test_raspberry_pi_throttling_discards_the_run(self):
        flags = "sys/devices/platform/soc/soc:firmware/get_throttled"
        write(self.root, flags, "0")
        self.assertEqual(power.read_throttled(self.root), 0)
        self.assertEqual(power.throttle_problems(0, 0), [])
        # under-voltage now, and frequency capping that happened during the run
        self.assertEqual(power.throttle_problems(0x0, 0x20001),
                         ["under-voltage", "arm frequency capped (during the run)"])
        # a flag that had occurred before the run started does not discard it
        self.assertEqual(power.throttle_problems(0x40000, 0x40000), [])
        write(self.root, flags, "50005")
        self.assertEqual(power.read_throttled(self.root), 0x50005)


class Energy(unittest.TestCase):
    class Source:
        description = "test"

        def __init__(self):
            self.w = 2.0

        def watts(self):
            return self.w

    def test_energy_between_integrates_the_samples_linearly(self):
        s = power.Sampler(self.Source())
        s.samples = [(10.0, 2.0), (11.0, 4.0), (12.0, 4.0)]
        self.assertAlmostEqual(s.energy_between(10.0, 12.0), 3.0 + 4.0)
        self.assertAlmostEqual(s.energy_between(10.5, 11.0), 0.5 * (3.0 + 4.0) / 2)
        self.assertAlmostEqual(s.energy_between(11.5, 13.0), 0.5 * 4.0)  # clipped to the sampled span
        self.assertEqual(s.energy_between(12.0, 11.0), None)

    def test_a_sampled_run_reports_energy_and_mean_power(self):
        src = self.Source()
        with power.Sampler(src, period_s=0.01, root=tempfile.gettempdir()) as s:
            pass  # the sampler thread takes at least a first and a last sample
        r = s.result()
        self.assertGreaterEqual(r["samples"], 2)
        self.assertAlmostEqual(r["mean_w"], 2.0)
        self.assertAlmostEqual(r["energy_j"], 2.0 * r["seconds"])


if __name__ == "__main__":
    unittest.main()
