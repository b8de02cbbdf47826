"""The page on the stand-in stages, for the browser test when it runs without the shipped models.

``streamlit run tests/ui/fake_app.py`` — installs the fakes as the process's default pipeline,
then runs the real page script unchanged.
"""
import runpy
from pathlib import Path

from pipeline_fakes import fake_pipeline

import ui.pipeline

if ui.pipeline._default is None or not getattr(ui.pipeline._default, "is_fake", False):
    ui.pipeline._default = fake_pipeline()
    ui.pipeline._default.is_fake = True

runpy.run_path(str(Path(__file__).resolve().parents[2] / "ui" / "app.py"), run_name="__main__")
