"""What the `painedge` subcommands do, as library functions (cli.py only parses); the console (console.py),
the demo (demo.py) and the benchmark (bench.py) have their own modules.

    faces.py     cues: what painedge sees in each frame of a clip; synth: the demo's clip to a file
    training.py  train a model, export a run to int8 TFLite with its metadata (need TensorFlow)
    models.py    model info, verify (int8 against float on a clip), explain (Grad-CAM), evaluate (real footage)
    deploy.py    run (after the preflight check; preview), station, config check/show/example, keys, schema

Each module imports what is heavy (OpenCV, MediaPipe, TensorFlow) inside the function that needs
it, so `painedge --help` and the light commands start at once. User errors are UserError.
"""
