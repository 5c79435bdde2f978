"""Course tooling behind the ``nlpprune`` command: environment doctor, notebook runner, student
copies, expected nbval outputs, results files and the results pages. It may import the lessons and
the library; neither imports it."""
