"""Paths of the bundled sample: a small format sample written for the project, not SVIT data."""

from __future__ import annotations

from pathlib import Path

SAMPLE_DIR = Path(__file__).parent / "sample"
RELEASE_DIR = SAMPLE_DIR / "release"  # released-format <task>.json files
IMAGES_DIR = SAMPLE_DIR / "images"  # VG layout: VG_100K/, VG_100K_2/
ANNOTATIONS_DIR = SAMPLE_DIR / "annotations"  # VG image_data/objects/regions, COCO captions
IMAGE_DATA = ANNOTATIONS_DIR / "image_data.json"
TEST_IDS = SAMPLE_DIR / "test_image_ids.txt"
LLAVA_DIR = SAMPLE_DIR / "llava"  # a tiny LLaVA-Instruct / LLaVA-mix pair for the mix recipe
LLAVA_MIX = LLAVA_DIR / "llava_v1_5_mix665k.json"
LLAVA_INSTRUCT = LLAVA_DIR / "llava_instruct_150k.json"
