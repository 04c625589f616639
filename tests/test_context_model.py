#!/usr/bin/env python3
"""tools/libsplit_tools/context.py, the reference of the C++ context model (tables format 3):
the integer network's outputs on the golden model (the same figures tests/test_entropy_codecs.cpp
holds the C++ side to), its file section, and that turning a trained float network into integers
keeps its predictions."""
import os
import sys
import unittest

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from libsplit_tools import context, tables  # noqa: E402

torch.set_num_threads(1)  # ctest runs two tests at once on two cores


def golden():
    """The golden model of ContextModelMatchesThePythonReference (6 elements, 5 units, 3 bins)."""
    n = 6
    deg = torch.tensor([0, 1, 1, 3, 4])
    return {
        "elements": n, "hidden": 5, "bins": 3, "hidden_shift": 4, "out_shift": 10, "deg": deg,
        "b1": torch.tensor([451, 940, 1116, 463, -395]),
        "w1": torch.tensor([[-285, 0, 0, 0, 0, 0], [-13, 179, 0, 0, 0, 0], [-292, 117, 0, 0, 0, 0],
                            [-117, 18, 96, -260, 0, 0], [208, 68, 143, -173, 30, 0]]),
        "bm": torch.tensor([143176, -584, 38727, 141365, 251360, 137979]),
        "wm": torch.tensor([[0, 0, 0, 0, 0], [154, 0, 0, 0, 0], [-181, -193, 183, 0, 0], [-100, -35, -68, 0, 0],
                            [27, -247, 32, -40, 0], [43, -61, -58, -91, 71]]),
        "vm": torch.tensor([[0, 0, 0, 0, 0, 0], [-144, 0, 0, 0, 0, 0], [-245, 11, 0, 0, 0, 0],
                            [-381, 369, 203, 0, 0, 0], [-7, -179, -223, 143, 0, 0], [67, -254, -222, 389, -185, 0]]),
        "bs": torch.tensor([2659, 722, -281, -600, 2180, 2773]),
        "ws": torch.tensor([[0, 0, 0, 0, 0], [-36, 0, 0, 0, 0], [-34, 49, 49, 0, 0], [38, 25, -10, 0, 0],
                            [-28, -39, -39, -11, 0], [-36, -23, -3, 35, -34]]),
        "vs": torch.tensor([[0, 0, 0, 0, 0, 0], [-5, 0, 0, 0, 0, 0], [27, 16, 0, 0, 0, 0], [-1, 15, 19, 0, 0, 0],
                            [0, -28, -28, -26, 0, 0], [8, 9, -28, -12, 26, 0]]),
    }


class Golden(unittest.TestCase):
    def test_outputs_symbols_tables_and_file(self):
        m = golden()
        codes = torch.tensor([[10, 200, 37, 0, 255, 128], [255] * 6, [0] * 6, [128, 3, 77, 250, 1, 90]])
        pred, _ = context.outputs(m, codes)
        sym, which = context.symbols_and_tables(m, codes, 2)
        self.assertEqual(pred.flatten().tolist(), [140, 255, 1, 0, 48, 0, 140, 0, 0, 115, 0, 178,
                                                   140, 255, 0, 0, 255, 0, 140, 4, 32, 80, 255, 247])
        self.assertEqual(sym.flatten().tolist(), [254, 73, 164, 128, 79, 0, 243, 127, 127, 12, 127, 205,
                                                  244, 129, 128, 128, 129, 128, 116, 127, 173, 42, 130, 227])
        self.assertEqual(which.flatten().tolist(), [2, 0, 2, 5, 3, 3, 2, 0, 2, 5, 3, 3,
                                                    2, 0, 0, 5, 3, 3, 2, 0, 0, 3, 5, 3])
        blob, version = tables.encode_tables([(0, [65535, 1])] * 6, context_section=context.encode(m, 2))
        self.assertEqual((len(blob), version), (384, 0x2AA7AACC))

    def test_a_weight_beyond_int16_is_refused(self):
        m = golden()
        m["vm"] = m["vm"].clone()
        m["vm"][5, 0] = 40000
        with self.assertRaises(ValueError):
            context.encode(m, 2)


class Quantization(unittest.TestCase):
    def test_integer_network_predicts_what_the_float_one_does(self):
        # Codes with a learnable dependence: each element is the one before plus small noise.
        g = torch.Generator().manual_seed(5)
        steps = torch.randint(-3, 4, (3000, 12), generator=g)
        codes = (torch.randint(60, 190, (3000, 1), generator=g) + steps.cumsum(1)).clamp(0, 255)
        net = context.train(codes, hidden=32, steps=600, seed=3)
        m = context.to_integer(net, codes, bins=8)
        with torch.no_grad():
            mean, _ = net(codes)
        pred, bins = context.outputs(m, codes)
        close = ((pred - mean.round().clamp(0, 255)).abs() <= 1).float().mean().item()
        self.assertGreater(close, 0.99)
        self.assertTrue(0 <= int(bins.min()) and int(bins.max()) <= 7)
        # and the prediction is worth having: residuals far narrower than the codes' spread
        resid = (codes[:, 1:] - pred[:, 1:]).float().std().item()
        self.assertLess(resid, 0.3 * codes.float().std().item())


if __name__ == "__main__":
    unittest.main()
