"""``python -m train.tts``."""

from . import main

raise SystemExit(main())
