# The worker image used by docker-compose.yml: the same code and pins as the embedded stack.
FROM python:3.11-slim
WORKDIR /app
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock
COPY . .
RUN pip install --no-cache-dir --no-deps -e .
ENV METERLINE_WEB_HOST=0.0.0.0
EXPOSE 6066
ENTRYPOINT ["meterline"]
CMD ["worker", "--loglevel", "INFO"]
