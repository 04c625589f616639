#!/usr/bin/env bash
# The recipe of models/fmnist-rgb64: Fashion-MNIST written as 80x80 RGB PNG files (an ImageFolder
# tree), a torchvision ResNet-18 teacher trained on it at 64x64, a learned BottleFit split of 3
# channels after layer1 and a natural cut after layer4. Resumable: run it again after an interruption.
#   bash tools/train-fmnist-rgb64.sh [extra split-train flags]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=build/data/fmnist-rgb
/usr/bin/python3 tools/make_fmnist_folder.py "$DATA" --size 80
RESUME=()
if [[ -f build/train/fmnist-rgb64.work/checkpoint.pt ]]; then RESUME=(--resume); fi
exec /usr/bin/python3 tools/split_train.py --data "$DATA" --arch resnet18 --train-teacher \
  --input-size 64 --resize 72 --split-after layer1 --widths 3 --natural layer4 \
  --epochs-teacher 5 --epochs-hd 1 --epochs-kd 2 --batch-size 128 --seed 0 \
  --out models/fmnist-rgb64 --name fmnist-rgb64 --work build/train/fmnist-rgb64.work "${RESUME[@]}" "$@"
