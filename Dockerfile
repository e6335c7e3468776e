FROM python:3.11-slim
WORKDIR /app
COPY . /app
RUN pip install --no-cache-dir .
ENV COWATCH_DATA_DIR=/data
EXPOSE 8000
CMD ["cowatch", "serve", "--host", "0.0.0.0", "--port", "8000"]
