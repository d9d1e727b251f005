"""Turn data files into `tf.data.Dataset`s: locate the files, read them, batch them."""
