"""Python side of libsplit: training, BottleFit recipes, split export and fixtures.

Runs on Debian 12's python3-torch 1.13 and python3-torchvision 0.14 (use /usr/bin/python3).
"""
