#!/usr/bin/env python3
"""tools/train_entropic.py's stage (ii) pieces: which parameters its optimizer decays, the
average of several epochs' weights, and batch-norm statistics measured again over a pass of the
training images (against the per-batch means computed here by hand)."""
import copy
import os
import sys
import unittest

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import train_entropic  # noqa: E402
from libsplit_tools import data, models  # noqa: E402
from train_fmnist import batches  # noqa: E402

torch.set_num_threads(1)  # ctest runs two tests at once on two cores


def student():
    torch.manual_seed(7)
    return train_entropic.EntropicStudent(models.Teacher(), 2, "element")


class Optimizer(unittest.TestCase):
    def test_latent_layers_undecayed_only_when_asked(self):
        s = student()
        latent = [s.encoder.net[-1].weight, s.encoder.net[-1].bias, s.tail.decoder.net[0].weight]
        network = [p for n, p in s.named_parameters() if not n.startswith("prior.")]

        off = train_entropic.kd_optimizer(s, 0.01, latent_decay=False)
        self.assertEqual(off.param_groups[1]["weight_decay"], 0.0)
        self.assertEqual(off.param_groups[0]["weight_decay"], 5e-4)
        self.assertEqual([id(p) for p in off.param_groups[1]["params"]], [id(p) for p in latent])
        self.assertEqual(len(off.param_groups[0]["params"]) + 3, len(network))
        self.assertFalse(any(p is q for p in off.param_groups[0]["params"] for q in latent))

        on = train_entropic.kd_optimizer(s, 0.01, latent_decay=True)
        self.assertEqual(on.param_groups[1]["params"], [])
        self.assertEqual([id(p) for p in on.param_groups[0]["params"]], [id(p) for p in network])

    def test_frozen_prefixes_and_prior_left_out(self):
        s = student()
        opt = train_entropic.kd_optimizer(s, 0.01, latent_decay=False, frozen=("encoder.",))
        named = {id(p): n for n, p in s.named_parameters()}
        kept = [named[id(p)] for g in opt.param_groups for p in g["params"]]
        self.assertTrue(kept)
        self.assertFalse([n for n in kept if n.startswith(("encoder.", "prior."))])
        self.assertEqual(len(opt.param_groups[1]["params"]), 1)  # the decoder's first convolution


class Averaging(unittest.TestCase):
    def test_mean_of_floats_counters_from_the_last(self):
        s = student()
        states = []
        for k in range(3):
            for p in s.parameters():
                p.data.normal_(generator=torch.Generator().manual_seed(k))
            for m in s.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.num_batches_tracked.fill_(10 * (k + 1))
            states.append(copy.deepcopy(s.state_dict()))
        train_entropic.average_weights(s, states)
        out = s.state_dict()
        for key, value in out.items():
            if value.is_floating_point():
                torch.testing.assert_close(value, (states[0][key] + states[1][key] + states[2][key]) / 3)
            else:
                self.assertTrue(torch.equal(value, states[2][key]), key)

    def test_batch_norm_statistics_are_the_mean_of_batch_means(self):
        s = student()
        images = torch.randint(0, 256, (96, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
        first_bn = s.encoder.net[1]
        first_bn.running_mean.fill_(5.0)
        first_bn.momentum = 0.25
        train_entropic.recompute_batch_norm(s, images, torch.Generator().manual_seed(11), 32)

        gen = torch.Generator().manual_seed(11)  # the same batches and augmentations, by hand
        means, variances = [], []
        with torch.no_grad():
            for idx in batches(images.shape[0], 32, gen):
                z = s.encoder.net[0](data.normalize(data.augment(images[idx], gen)))
                means.append(z.mean(dim=(0, 2, 3)))
                variances.append(z.var(dim=(0, 2, 3), unbiased=True))
        self.assertEqual(len(means), 3)
        torch.testing.assert_close(first_bn.running_mean, torch.stack(means).mean(0), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(first_bn.running_var, torch.stack(variances).mean(0), rtol=1e-4, atol=1e-5)
        self.assertEqual(first_bn.momentum, 0.25)  # restored
        self.assertFalse(s.training)

    def test_layers_trained_with_fixed_statistics_keep_them(self):
        s = student()
        images = torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(4))
        s.encoder.net[1].running_mean.fill_(5.0)
        s.tail.decoder.net[1].running_mean.fill_(5.0)
        train_entropic.recompute_batch_norm(s, images, torch.Generator().manual_seed(2), 32, keep=("encoder.",))
        self.assertTrue(torch.equal(s.encoder.net[1].running_mean, torch.full((32,), 5.0)))
        self.assertFalse(torch.equal(s.tail.decoder.net[1].running_mean, torch.full((96,), 5.0)))
        train_entropic.recompute_batch_norm(s, images, torch.Generator().manual_seed(2), 32, keep=("",))
        self.assertTrue(torch.equal(s.encoder.net[1].running_mean, torch.full((32,), 5.0)))


if __name__ == "__main__":
    unittest.main()
