"""Small benchmark samples in the forms users have, drawn in code: MME's release layout and lmms-lab table, POPE's
question files and table, a RefCOCO-shaped table. Tests and `make demo` evaluate the tiny model on them; the
scores mean nothing, the shapes are exact.

    python -m tools.eval_samples            # rewrites the MME-layout sample shipped for `make demo`
    python -m tools.eval_samples OUT        # writes OUT/mme (release layout) and OUT/refcoco.parquet
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

from PIL import Image, ImageDraw

# (shape, colour, normalized box): what every sample image shows, on a grey canvas of the given size.
SHAPES = [
    ("ellipse", "red", (0.1, 0.2, 0.5, 0.8)),
    ("rectangle", "blue", (0.55, 0.1, 0.95, 0.5)),
    ("ellipse", "green", (0.3, 0.3, 0.7, 0.7)),
    ("rectangle", "yellow", (0.05, 0.55, 0.45, 0.95)),
]
# Two questions per image, the first answered Yes, the second No, as MME pairs them.
MME_QUESTIONS = {
    "existence": [
        ("Is there a {colour} shape in the image?", "Yes"),
        ("Is there a purple shape in the image?", "No"),
    ],
    "color": [("Is the shape {colour}?", "Yes"), ("Is the shape white?", "No")],
    "count": [("Is there one shape in the image?", "Yes"), ("Are there five shapes in the image?", "No")],
    "commonsense_reasoning": [
        ("Can a {colour} shape be drawn?", "Yes"),
        ("Is this a photo of a city?", "No"),
    ],
}
SUFFIX = " Please answer yes or no."


def draw(width: int, height: int, shape: int) -> Image.Image:
    kind, colour, (x1, y1, x2, y2) = SHAPES[shape % len(SHAPES)]
    image = Image.new("RGB", (width, height), (128, 128, 128))
    painter = ImageDraw.Draw(image)
    (painter.ellipse if kind == "ellipse" else painter.rectangle)(
        (x1 * width, y1 * height, x2 * width, y2 * height), fill=colour
    )
    return image


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def mme_rows(subtasks=tuple(MME_QUESTIONS), images_per_subtask: int = 2) -> list[dict]:
    """Rows of the lmms-lab/MME shape (image as PIL), two per image, adjacent."""
    rows = []
    for s, subtask in enumerate(subtasks):
        for i in range(images_per_subtask):
            colour = SHAPES[(s + i) % len(SHAPES)][1]
            image = draw(40 + 8 * i, 30 + 6 * s, s + i)
            for question, answer in MME_QUESTIONS[subtask]:
                rows.append(
                    {
                        "question_id": f"{subtask}/{i:04d}.png",
                        "image": image,
                        "question": question.format(colour=colour) + SUFFIX,
                        "answer": answer,
                        "category": subtask,
                    }
                )
    return rows


def write_mme_layout(folder: Path, rows: list[dict] | None = None, separate_folders=("color",)) -> Path:
    """The official release layout: side by side, or `images/` + `questions_answers_YN/` for `separate_folders`."""
    rows = rows or mme_rows()
    for start in range(0, len(rows), 2):
        first, second = rows[start], rows[start + 1]
        subtask, name = first["question_id"].split("/")
        stem = Path(name).stem
        base = Path(folder) / subtask
        image_dir, question_dir = (
            (base / "images", base / "questions_answers_YN") if subtask in separate_folders else (base, base)
        )
        image_dir.mkdir(parents=True, exist_ok=True)
        question_dir.mkdir(parents=True, exist_ok=True)
        first["image"].save(image_dir / name)
        lines = [f"{row['question']}\t{row['answer']}\n" for row in (first, second)]
        (question_dir / f"{stem}.txt").write_text("".join(lines), encoding="utf-8")
    return Path(folder)


def write_table(path: Path, rows: list[dict]) -> Path:
    """Rows with PIL images as one Parquet file, image bytes embedded (what `load_dataset` reads back)."""
    import datasets

    encoded = [{**row, "image": {"bytes": png_bytes(row["image"]), "path": None}} for row in rows]

    def feature(key, value):
        if key == "image":
            return datasets.Image()
        if key == "bbox":
            return datasets.List(datasets.Value("float64"))
        return (
            datasets.List(datasets.Value("string")) if isinstance(value, list) else datasets.Value("string")
        )

    features = {key: feature(key, value) for key, value in rows[0].items()}
    table = datasets.Dataset.from_list(encoded, features=datasets.Features(features))
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(str(path))
    return path


def pope_rows(per_category: int = 4) -> list[dict]:
    """Rows of the lmms-lab/POPE shape: yes and no questions alternating, in every category."""
    rows = []
    for category in ("random", "popular", "adversarial"):
        for i in range(per_category):
            kind, colour, _ = SHAPES[i % len(SHAPES)]
            asked = colour if i % 2 == 0 else "purple"
            rows.append(
                {
                    "question_id": str(len(rows)),
                    "question": f"Is there a {asked} {kind} in the image?",
                    "answer": "yes" if i % 2 == 0 else "no",
                    "category": category,
                    "image_source": f"COCO_val2014_{i:012d}",
                    "image": draw(36 + 4 * i, 30, i),
                }
            )
    return rows


def write_pope_files(folder: Path, rows: list[dict] | None = None) -> tuple[Path, Path]:
    """POPE's question files (`coco_pope_<category>.json`, JSON lines) and their images folder."""
    rows = rows or pope_rows()
    questions, images = Path(folder) / "questions", Path(folder) / "images"
    questions.mkdir(parents=True, exist_ok=True)
    images.mkdir(parents=True, exist_ok=True)
    by_category: dict[str, list[str]] = {}
    for row in rows:
        name = f"{row['image_source']}.jpg"
        row["image"].save(images / name)
        line = {
            "question_id": int(row["question_id"]),
            "image": name,
            "text": row["question"],
            "label": row["answer"],
        }
        by_category.setdefault(row["category"], []).append(json.dumps(line) + "\n")
    for category, lines in by_category.items():
        (questions / f"coco_pope_{category}.json").write_text("".join(lines), encoding="utf-8")
    return questions, images


def refcoco_rows() -> list[dict]:
    """Rows of the lmms-lab/RefCOCO shape: `bbox` [x, y, w, h] in pixels, expressions in `answer` (a list)."""
    rows = []
    for i, (kind, colour, (x1, y1, x2, y2)) in enumerate(SHAPES):
        width, height = 48 + 8 * i, 36
        rows.append(
            {
                "question_id": f"ref-{i}",
                "image": draw(width, height, i),
                "answer": [f"the {colour} {kind}", f"{colour} shape"][: 1 + i % 2],
                "bbox": [x1 * width, y1 * height, (x2 - x1) * width, (y2 - y1) * height],
                "file_name": f"COCO_train2014_{i:012d}.jpg",
            }
        )
    return rows


# The MME-layout sample `make demo` evaluates the tiny model on (package data of svit_model).
SHIPPED_MME = Path(__file__).resolve().parents[1] / "svit_model" / "evaluation" / "sample" / "mme"

if __name__ == "__main__":
    if len(sys.argv) > 1:
        out = Path(sys.argv[1])
        print(write_mme_layout(out / "mme"), write_table(out / "refcoco.parquet", refcoco_rows()))
    else:
        import shutil

        shutil.rmtree(SHIPPED_MME, ignore_errors=True)
        print(write_mme_layout(SHIPPED_MME))
