"""The resumable stream of training batches that both data pipelines (mnist_ds, folder_ds) share.

Stateless: epoch e's order is drawn from (seed, e), and anything random about a batch from
(seed, its global step), so a run resumed at (epoch, step) sees exactly the batches it would
have seen had it never stopped.
"""
import tensorflow as tf


def epoch_batches_ds(n, batch_size, seed=0, first_epoch=0, skip_steps=0):
    """Endless tf.data stream of (global step, indices int32 [batch_size]) for n training items:
    epoch e is a permutation of range(n) drawn from (seed, e), cut into n // batch_size full
    batches (the rest dropped). Stateless: a run resumed at (first_epoch, skip_steps) gets
    exactly the batches it would have got."""
    steps = n // batch_size

    def epoch_batches(epoch):  # epoch's batches of indices: [steps, batch_size]
        order = tf.random.experimental.stateless_shuffle(tf.range(n), seed=fold_seed(seed, 0, epoch))
        return tf.reshape(order[:steps * batch_size], [steps, batch_size])

    epochs = tf.data.Dataset.range(first_epoch, 2 ** 31).map(epoch_batches).unbatch()
    return epochs.enumerate(start=first_epoch * steps).skip(skip_steps)


def fold_seed(seed, stream, counter):
    """A stateless-RNG seed [2] for (seed, stream, counter): distinct streams never share seeds."""
    base = tf.stack([tf.cast(seed, tf.int64), tf.constant(stream, tf.int64)])
    return tf.random.experimental.stateless_fold_in(base, tf.cast(counter, tf.int64))

