"""The practitioner's tools around the lesson at the root (pix2pix.py, nets.py, mnist_ds.py, ...).
They import the lesson; the lesson never imports them (tests/test_structure.py).

    cli             the command line: `python pix2pix.py [COMMAND] [FLAGS]`
    training        a whole training run: data, model, callbacks, fit, resume
    callbacks       the run's Keras callbacks: generator files, checkpoints, signals, health, time
    checkpoint      saving and restoring a run, one run per output folder (the lock)
    distribute      tf.distribute and mixed precision: ReplicatedPix2Pix
    folder_ds       folders of image pairs and of single photos as tf.data pipelines
    predict         translate new images with a trained generator (any size, tiles)
    evaluate        score a generator on MNIST's test digits (classifier, Fréchet distance)
    evaluate_pairs  score a generator on a folder of test pairs (L1, PSNR, SSIM, FID, KID)
    results_page    evaluate's index.html
    export          SavedModel, TFLite, ONNX
    demo            draw in the browser, watch a generator translate (Gradio)
    ablation        the paper's loss ablation on MNIST
    download        the paper's data sets by name: resumable, checked, never a half folder
"""
