"""A fixed mixed sample (EN, RU, ZH, code; short to long) for conversion reports and profiling."""

SAMPLE_TEXTS: tuple[str, ...] = (
    "How do I reset my password?",
    "The quarterly report shows revenue growth of twelve percent, driven mostly by subscriptions in Europe.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "Which train goes to the airport after midnight?",
    "A small bakery on the corner sells fresh bread every morning, and by noon the shelves are usually empty "
    "because people from the nearby offices buy everything for lunch.",
    "Memory leaks grow slowly until the process is killed by the operating system.",
    "Как сбросить пароль от учётной записи?",
    "Москва — столица России и крупнейший город страны по численности населения.",
    "Вчера вечером шёл сильный дождь, поэтому мы остались дома и смотрели старые фильмы.",
    "Нейронные сети обучаются методом обратного распространения ошибки.",
    "Поезд в аэропорт отправляется каждые двадцать минут с первой платформы.",
    "如何重置我的账户密码？",
    "北京是中国的首都，也是政治和文化中心。",
    "昨天晚上下了很大的雨，所以我们待在家里看电影。",
    "神经网络通过反向传播算法进行训练。",
    "这家小面包店每天早上都卖新鲜的面包，中午之前通常就卖完了。",
    "def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a",
    "SELECT customer_id, COUNT(*) AS orders FROM orders GROUP BY customer_id HAVING COUNT(*) > 5;",
    "function debounce(fn, ms) {\n  let t;\n  return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };\n}",
    "int sum(const int *a, size_t n) { int s = 0; for (size_t i = 0; i < n; i++) s += a[i]; return s; }",
    "for f in *.log; do gzip \"$f\"; done",
    "import numpy as np\nx = np.linspace(0, 1, 100)\ny = np.sin(2 * np.pi * x)",
    "ok",
    "Embedding models map text to vectors so that texts with similar meaning end up close together; "
    "retrieval systems index documents once and compare each query vector against the whole index "
    "with cosine similarity, returning the nearest passages to a language model as context.",
)
